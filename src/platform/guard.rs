//! The copy's refusal of extensions the platform does not offer: two event
//! triggers on `CREATE EXTENSION`, made by the superuser in the rehearsal
//! database, so that every migration tool (rehearse's SQL runner, Alembic,
//! a command) meets them alike.
//!
//! Why event triggers, and why both events (PostgreSQL 15, "Event Trigger
//! Firing Matrix": CREATE EXTENSION fires `ddl_command_start` and
//! `ddl_command_end`; PostgreSQL 18 dropped the matrix and lists instead
//! the commands that do *not* fire, CREATE EXTENSION not among them):
//!
//! - `ddl_command_end` is exact: `pg_event_trigger_ddl_commands()` and the
//!   catalogs already show what was created, and raising there rolls the
//!   statement back. It checks every extension the copy did not have when
//!   the guard was made, so one created by `CASCADE` is seen too.
//! - but a non-superuser's `CREATE EXTENSION` of an extension PostgreSQL
//!   does not mark trusted fails its permission check before that event
//!   ("permission denied to create extension", 42501), which would hide the
//!   platform's refusal. `ddl_command_start` fires before the check, but
//!   knows only the command tag: it reads the names from `current_query()`
//!   (comments removed) and judges those untrusted ones, and those this
//!   server does not have at all (whose "could not open extension control
//!   file" would come first too). A statement
//!   string that creates several extensions is refused at its first
//!   `CREATE EXTENSION` when any of them is refused.
//!
//! An extension the platform offers but PostgreSQL does not mark trusted
//! (`pg_stat_statements`, `postgres_fdw`, ...) is created on the platform by
//! the pseudo-superuser's members; on the copy only a superuser can, and
//! rehearse never makes the migration role one, so that statement fails
//! with a message that says so (42501) instead of passing or failing silently.
//!
//! The function lives in `pg_catalog` of the rehearsal database: the schema
//! snapshots and the drift check leave `pg_catalog` out, as the platform's
//! own hooks are invisible on the platform.

use crate::sys::db::quote_literal;

use super::{ExtensionList, Profile};

/// The event triggers' names, and their function's.
pub const FUNCTION: &str = "pg_catalog.rehearse_platform_guard";
const TRIGGERS: [(&str, &str); 2] =
    [("rehearse_platform_start", "ddl_command_start"), ("rehearse_platform_end", "ddl_command_end")];

/// What the guard needs to know.
pub struct Guard<'a> {
    pub profile: &'a Profile,
    pub major: i32,
    pub list: &'a ExtensionList,
    /// The extensions the copy has before any migration (the dump's).
    pub present: &'a [String],
}

/// The message for an extension the platform does not offer, `%s` for its
/// name (a format() string: every other `%` doubled).
pub fn not_offered(g: &Guard<'_>) -> String {
    format!(
        "extension \"%s\" is not offered by {} {} (allowlist: {}, {})",
        percent(&g.profile.name),
        g.major,
        percent(g.profile.file),
        percent(&g.list.origin.shown())
    )
}

fn percent(text: &str) -> String {
    text.replace('%', "%%")
}

/// The message for an extension offered to the pseudo-superuser that only
/// a superuser can create on vanilla PostgreSQL, `%s` for its name.
pub fn untrusted_offered(g: &Guard<'_>) -> String {
    format!(
        "extension \"%s\" is offered by {} {} to members of {}, but PostgreSQL lets only a superuser create an \
         extension it does not mark trusted, and rehearse never makes the migration role a superuser: this \
         statement cannot be rehearsed on the copy (docs/production.md#managed-platforms)",
        percent(&g.profile.name),
        g.major,
        percent(&g.profile.pseudo_superuser.name)
    )
}

/// The SQL that makes the guard (run by the superuser in the rehearsal database).
pub fn create_sql(g: &Guard<'_>) -> String {
    let array = |names: &[String]| {
        let quoted: Vec<String> = names.iter().map(|n| quote_literal(n)).collect();
        format!("ARRAY[{}]::text[]", quoted.join(", "))
    };
    let function = format!(
        "CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog
         AS $rehearse$
         DECLARE
           offered text[] := {offered};
           present text[] := {present};
           ext text;
           untrusted boolean;
           su boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
         BEGIN
           IF tg_event = 'ddl_command_start' THEN
             FOR ext IN
               SELECT CASE WHEN m[1] LIKE '\"%' THEN replace(substr(m[1], 2, length(m[1]) - 2), '\"\"', '\"')
                           ELSE lower(m[1]) END
                 FROM regexp_matches(
                        regexp_replace(current_query(), '--[^\\n]*|/\\*([^*]|\\*+[^*/])*\\*+/', ' ', 'g'),
                        'create\\s+extension\\s+(?:if\\s+not\\s+exists\\s+)?(\"(?:[^\"]|\"\")+\"|[a-z_][a-z0-9_$]*)',
                        'gi') AS m
             LOOP
               SELECT v.superuser AND NOT v.trusted INTO untrusted
                 FROM pg_available_extension_versions v
                 JOIN pg_available_extensions a ON a.name = v.name AND a.default_version = v.version
                WHERE v.name = ext;
               -- Not installed here (untrusted is null) or refused a non-superuser here: judged now,
               -- as PostgreSQL's own error would come first. Trusted: the end trigger judges it.
               IF ext <> ALL (offered) AND (untrusted IS NULL OR (untrusted AND NOT su)) THEN
                 RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', MESSAGE = format({not_offered}, ext);
               ELSIF ext = ANY (offered) AND untrusted AND NOT su AND pg_has_role(current_user, {pseudo}, 'MEMBER') THEN
                 RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = format({untrusted}, ext);
               END IF;
             END LOOP;
           ELSE
             FOR ext IN SELECT extname FROM pg_extension
                         WHERE extname <> ALL (offered) AND extname <> ALL (present) ORDER BY extname
             LOOP
               RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', MESSAGE = format({not_offered}, ext);
             END LOOP;
           END IF;
         END
         $rehearse$;",
        offered = array(&g.list.names),
        present = array(g.present),
        not_offered = quote_literal(&not_offered(g)),
        untrusted = quote_literal(&untrusted_offered(g)),
        pseudo = quote_literal(&g.profile.pseudo_superuser.name),
    );
    let triggers: Vec<String> = TRIGGERS
        .iter()
        .map(|(name, event)| {
            format!(
                "DROP EVENT TRIGGER IF EXISTS {name}; \
                 CREATE EVENT TRIGGER {name} ON {event} WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION {FUNCTION}();"
            )
        })
        .collect();
    format!("{function}\n{}", triggers.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{profile, Platform};

    #[test]
    fn the_messages_name_the_platform_the_major_and_where_the_list_comes_from() {
        let rds = profile(Platform::Rds).unwrap();
        let list = rds.extensions_for(15).unwrap();
        let g = Guard { profile: rds, major: 15, list, present: &["plpgsql".into()] };
        let m = not_offered(&g).replace("%s", "file_fdw");
        assert!(m.starts_with("extension \"file_fdw\" is not offered by Amazon RDS for PostgreSQL 15"), "{m}");
        assert!(m.contains("data/platforms/rds.yaml") && m.contains(&list.origin.source), "{m}");
        let sql = create_sql(&g);
        assert!(sql.contains("'pgcrypto'") && sql.contains("'plpgsql'") && sql.contains("rds_superuser"));
        assert_eq!(sql.matches("CREATE EVENT TRIGGER").count(), 2);
    }
}
