//! The copy as production runs the release (`production:`): production's
//! migration role made on the copy with its attributes, memberships and
//! login settings, and a login as it for the migrations. Role-level
//! settings apply at login ("the specified value becomes the session
//! default", ALTER ROLE, PostgreSQL 15 and 18), so the migrations' session
//! logs in as the role rather than SET ROLE from the superuser's. The
//! server-level settings go through prepare with the scenario's
//! (ALTER SYSTEM and a reload); here they are only reported.

use tokio_postgres::Client;

use crate::backend::Throwaway;
use crate::catalog::{RoleSetting, SettingScope};
use crate::error::{ErrorKind, Result};
use crate::estimate::stats::MigrationRole;
use crate::migrations::sql;
use crate::pg::guc;
use crate::plan::production::ProductionPlan;
use crate::report::{AppliedSetting, NotReproduced, ProductionReport, SettingOrigin};
use crate::sys::db::{connect, quote_ident, quote_literal, ConnInfo, Secret};

/// The login the migrations run as, and what the report says of it.
pub struct AsProduction {
    /// The role's login on the copy; None: the superuser's.
    pub conn: Option<ConnInfo>,
    /// The role's login settings kept per database (see [`login_on`]).
    per_database: Vec<RoleSetting>,
    pub report: ProductionReport,
}

/// The login the migrations run as on `database`: the rehearsed database,
/// or a copy of it the race, the abort or the rollback runs on. With
/// production's role (`production.as_role`), the role's login on that
/// database, with the login settings that are kept per database set there
/// first: roles are cluster-wide, but `ALTER ROLE ... IN DATABASE` and
/// `ALTER DATABASE ... SET` are rows of pg_db_role_setting keyed by the
/// database, and "database-level configuration parameters (set via ALTER
/// DATABASE) ... are not copied from the template database" (CREATE
/// DATABASE, PostgreSQL 15 and 18). Without it, `database` itself.
pub async fn login_on(production: Option<&AsProduction>, server: &Throwaway, database: &ConnInfo) -> Result<ConnInfo> {
    let Some((p, login)) = production.and_then(|p| Some((p, p.conn.as_ref()?))) else {
        return Ok(database.clone());
    };
    if database.dbname != login.dbname && !p.per_database.is_empty() {
        let conn = server.conn();
        let failed = |e| {
            ErrorKind::ConnectionFailed.because(
                format!("cannot set production's role {}'s login settings in {}", login.user, database.dbname),
                e,
            )
        };
        let admin = connect(conn, &conn.admin_dbname, "rehearse-admin").await.map_err(failed)?;
        set_login_settings(&admin, &login.user, &database.dbname, &p.per_database).await.map_err(failed)?;
    }
    Ok(ConnInfo { user: login.user.clone(), password: login.password.clone(), ..database.clone() })
}

/// Reproduces production's role and reports its settings, on `admin`
/// (the superuser's session in the copy). `tracking_table`: an SQL source
/// runs, whose tracking table the role must own.
pub async fn reproduce(
    plan: &ProductionPlan,
    server: &Throwaway,
    admin: &Client,
    tracking_table: bool,
) -> Result<AsProduction> {
    let mut report = ProductionReport { stats: plan.stats.display().to_string(), ..Default::default() };
    let shared = server.shared_database().is_some();
    for (name, value) in &plan.settings {
        match shared {
            false => report.applied.push(AppliedSetting {
                name: name.clone(),
                value: value.clone(),
                from: SettingOrigin::Server,
            }),
            true => report.not_applied.push(NotReproduced {
                what: format!("{name} = {value}"),
                why: "the url backend never changes a server it does not own; only what a database may set for \
                      itself was set (see observation.limitations)"
                    .into(),
            }),
        }
    }
    report
        .not_applied
        .extend(plan.not_applied.iter().map(|(what, why)| NotReproduced { what: what.clone(), why: why.clone() }));
    let Some(role) = &plan.role else { return Ok(AsProduction { conn: None, per_database: Vec::new(), report }) };
    if shared {
        report.not_applied.push(NotReproduced {
            what: format!("role {}", role.name),
            why: "the url backend creates no roles on a shared server: the migrations ran as postgres.url's user"
                .into(),
        });
        return Ok(AsProduction { conn: None, per_database: Vec::new(), report });
    }
    let conn = server.conn();
    let failed =
        |e| ErrorKind::ScenarioInvalid.because(format!("cannot make production's role {} on the copy", role.name), e);
    let password = make_role(admin, role, &conn.dbname, &mut report).await.map_err(failed)?;
    if tracking_table {
        sql::give_tracking_table(admin, &role.name).await.map_err(failed)?;
    }
    report.role = Some(role.name.clone());
    let login = ConnInfo { user: role.name.clone(), password, ..conn.clone() };
    let per_database = role.settings.iter().filter(|s| s.scope != SettingScope::Role).cloned().collect();
    Ok(AsProduction { conn: Some(login), per_database, report })
}

/// Creates the role (or takes the one the dump's roles made) with
/// production's attributes, a login with a fresh password, its memberships
/// and its login settings in the copy's database.
async fn make_role(
    admin: &Client,
    role: &MigrationRole,
    dbname: &str,
    report: &mut ProductionReport,
) -> Result<Secret, tokio_postgres::Error> {
    let name = quote_ident(&role.name);
    let exists: bool =
        admin.query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[&role.name]).await?.get(0);
    let password = Secret::generate();
    let verb = if exists { "ALTER" } else { "CREATE" };
    admin
        .batch_execute(&format!(
            "{verb} ROLE {name} WITH LOGIN PASSWORD {} {}",
            quote_literal(password.expose()),
            attributes(role)
        ))
        .await?;
    report.role_created = !exists;
    for group in &role.member_of {
        let there: bool =
            admin.query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[group]).await?.get(0);
        match there {
            true => {
                admin.batch_execute(&format!("GRANT {} TO {name}", quote_ident(group))).await?;
                report.member_of.push(group.clone());
            }
            false => report.not_applied.push(NotReproduced {
                what: format!("membership in {group}"),
                why: "no such role on the copy (the dump does not name it)".into(),
            }),
        }
    }
    set_login_settings(admin, &role.name, dbname, &role.settings).await?;
    for s in &role.settings {
        let from = match s.scope {
            SettingScope::RoleInDatabase => SettingOrigin::RoleInDatabase,
            SettingScope::Role => SettingOrigin::Role,
            SettingScope::Database => SettingOrigin::Database,
        };
        report.applied.push(AppliedSetting { name: s.name.clone(), value: s.value.clone(), from });
    }
    Ok(password)
}

/// `settings` of role `role`, as `ALTER ROLE/DATABASE ... SET`, for `dbname`
/// where they are kept per database. A list setting is given back one
/// literal per element, as pg_dumpall does (`pg::guc`).
async fn set_login_settings(
    admin: &Client,
    role: &str,
    dbname: &str,
    settings: &[RoleSetting],
) -> Result<(), tokio_postgres::Error> {
    let (role, dbname) = (quote_ident(role), quote_ident(dbname));
    for s in settings {
        let target = match s.scope {
            SettingScope::RoleInDatabase => format!("ROLE {role} IN DATABASE {dbname}"),
            SettingScope::Role => format!("ROLE {role}"),
            SettingScope::Database => format!("DATABASE {dbname}"),
        };
        let value = guc::set_value(&s.name, &s.value);
        admin.batch_execute(&format!("ALTER {target} SET {} TO {value}", quote_ident(&s.name))).await?;
    }
    Ok(())
}

/// Production's attributes, each said either way: a role the dump's roles
/// made may have had others. Never SUPERUSER unless production's is.
fn attributes(role: &MigrationRole) -> String {
    let flag = |on: bool, name: &str| if on { name.to_string() } else { format!("NO{name}") };
    [
        flag(role.superuser, "SUPERUSER"),
        flag(role.createrole, "CREATEROLE"),
        flag(role.createdb, "CREATEDB"),
        flag(role.bypassrls, "BYPASSRLS"),
        flag(role.replication, "REPLICATION"),
        flag(role.inherit, "INHERIT"),
    ]
    .join(" ")
}
