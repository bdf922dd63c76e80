//! Production's migration role, as `rehearse stats --role` reads it: its
//! attributes (pg_roles), the roles it is a member of (pg_auth_members),
//! and the settings that apply to it at login (pg_db_role_setting). Every
//! role may read these catalogs on PostgreSQL 15 and 18 (pg_roles masks
//! only the password; pg_db_role_setting is readable by PUBLIC).

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Error};

/// A role and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRole {
    pub name: String,
    pub superuser: bool,
    pub createrole: bool,
    pub createdb: bool,
    pub bypassrls: bool,
    pub replication: bool,
    /// Whether it inherits the privileges of the roles it is a member of.
    pub inherit: bool,
    /// The roles it is a member of (direct memberships), sorted.
    #[serde(default)]
    pub member_of: Vec<String>,
    /// The settings applied when it logs in to production's database.
    #[serde(default)]
    pub settings: Vec<RoleSetting>,
}

/// One `ALTER ROLE/DATABASE ... SET` that applies to the role's sessions in the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleSetting {
    pub name: String,
    pub value: String,
    pub scope: SettingScope,
}

/// Where a login setting was set, most specific first: PostgreSQL applies
/// role-in-database over role over database ("Role-specific variable
/// settings take precedence over database-specific ones", ALTER ROLE, 15 and 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingScope {
    /// `ALTER ROLE r IN DATABASE d SET`.
    RoleInDatabase,
    /// `ALTER ROLE r SET`.
    Role,
    /// `ALTER DATABASE d SET`.
    Database,
}

/// The role named `name` with its memberships and login settings in the
/// current database; None when no such role exists.
pub async fn migration_role(client: &Client, name: &str) -> Result<Option<MigrationRole>, Error> {
    let Some(row) = client
        .query_opt(
            "/*rehearse*/ SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication, rolinherit,
                    ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                          WHERE m.member = r.oid ORDER BY 1)
             FROM pg_roles r WHERE rolname = $1",
            &[&name],
        )
        .await?
    else {
        return Ok(None);
    };
    let settings = client
        .query(
            "/*rehearse*/ SELECT s.setrole <> 0, s.setdatabase <> 0, c.setting
             FROM pg_db_role_setting s, unnest(s.setconfig) AS c(setting)
             WHERE (s.setrole = 0 OR s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1))
               AND (s.setdatabase = 0 OR s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))
               AND NOT (s.setrole = 0 AND s.setdatabase = 0)",
            &[&name],
        )
        .await?;
    let mut settings: Vec<RoleSetting> = settings
        .iter()
        .filter_map(|r| {
            let scope = match (r.get::<_, bool>(0), r.get::<_, bool>(1)) {
                (true, true) => SettingScope::RoleInDatabase,
                (true, false) => SettingScope::Role,
                _ => SettingScope::Database,
            };
            let (name, value) = r.get::<_, String>(2).split_once('=').map(|(n, v)| (n.to_string(), v.to_string()))?;
            Some(RoleSetting { name, value, scope })
        })
        .collect();
    settings.sort_by(|a, b| a.scope.cmp(&b.scope).then_with(|| a.name.cmp(&b.name)));
    Ok(Some(MigrationRole {
        name: row.get(0),
        superuser: row.get(1),
        createrole: row.get(2),
        createdb: row.get(3),
        bypassrls: row.get(4),
        replication: row.get(5),
        inherit: row.get(6),
        member_of: row.get(7),
        settings,
    }))
}

/// The server-level value of each named setting: `reset_val` where it came
/// from the server's configuration, skipped where the reading session's own
/// role or database set it (`source` user, database, database user), since
/// those are login settings, not the server's. Unknown names are skipped.
pub async fn server_settings(client: &Client, names: &[&str]) -> Result<Vec<(String, String)>, Error> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(
            "/*rehearse*/ SELECT name, CASE WHEN unit = '8kB' THEN (reset_val::bigint * 8)::text || 'kB'
                                  ELSE reset_val || coalesce(unit, '') END FROM pg_settings
             WHERE name = ANY($1) AND source NOT IN ('user', 'database', 'database user', 'session')
             ORDER BY name",
            &[&names],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
