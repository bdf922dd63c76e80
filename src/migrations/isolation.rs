//! Which variables of rehearse's own environment a migration tool must not
//! inherit: every one that names a database. A tool's configuration may
//! connect through its own setting (Airflow's
//! `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`, an env.py reading
//! `APP_DATABASE_URL`) instead of the URL rehearse gives it; exported in
//! the shell that runs rehearse, such a variable would point the tool at
//! another server. Cleared are:
//!
//! - `DATABASE_URL`, and every variable of libpq's "Environment Variables"
//!   page (PostgreSQL 18), with any `PGSSL*` and `PGGSS*` a later version adds;
//! - any variable whose value is a PostgreSQL URL (`postgres://`,
//!   `postgresql://`, SQLAlchemy's `postgresql+driver://`, JDBC's
//!   `jdbc:postgresql://`) or a libpq conninfo string naming a server or a
//!   database (`host=... dbname=...`);
//!
//! except those rehearse sets itself and those the scenario's
//! `migrations.env` names (the tool is given both: they are the kept names).

use std::ffi::OsString;

/// Every variable libpq reads (PostgreSQL 18's "Environment Variables"):
/// where to connect, as whom, how, and the session defaults it sends.
const LIBPQ: &[&str] = &[
    "PGHOST",
    "PGSSLNEGOTIATION",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGREQUIREAUTH",
    "PGCHANNELBINDING",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOAUTHDEBUG",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGREQUIRESSL",
    "PGSSLCOMPRESSION",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCERTMODE",
    "PGSSLROOTCERT",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLSNI",
    "PGREQUIREPEER",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGMINPROTOCOLVERSION",
    "PGMAXPROTOCOLVERSION",
    "PGGSSENCMODE",
    "PGKRBSRVNAME",
    "PGGSSLIB",
    "PGGSSDELEGATION",
    "PGCONNECT_TIMEOUT",
    "PGCLIENTENCODING",
    "PGTARGETSESSIONATTRS",
    "PGLOADBALANCEHOSTS",
    "PGDATESTYLE",
    "PGTZ",
    "PGGEQO",
    "PGSYSCONFDIR",
    "PGLOCALEDIR",
];

/// libpq's connection keywords ("Parameter Key Words"): a value made only
/// of `keyword=value` pairs of these is a conninfo string.
const CONNINFO_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslkeylogfile",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// The conninfo keywords that say where to connect: a string without one
/// (`sslmode=require`) names no server and no database.
const DESTINATION_KEYWORDS: &[&str] = &["host", "hostaddr", "port", "dbname", "service"];

/// Whether the variable `name=value` names a database (see the module's rules).
pub fn names_a_database(name: &str, value: &str) -> bool {
    name == "DATABASE_URL"
        || LIBPQ.contains(&name)
        || name.starts_with("PGSSL")
        || name.starts_with("PGGSS")
        || is_postgres_url(value)
        || is_conninfo(value)
}

/// The names, among the `inherited` variables, that name a database and
/// are not `kept`: what a tool's process must not inherit.
pub fn to_clear(inherited: impl IntoIterator<Item = (OsString, OsString)>, kept: &[&str]) -> Vec<OsString> {
    let mut names: Vec<OsString> = inherited
        .into_iter()
        .filter(|(name, value)| {
            let name_text = name.to_string_lossy();
            !kept.contains(&name_text.as_ref()) && names_a_database(&name_text, &value.to_string_lossy())
        })
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names
}

/// `postgres://`, `postgresql://`, `postgresql+psycopg2://`, `jdbc:postgresql://`, any case.
fn is_postgres_url(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'').to_ascii_lowercase();
    let v = v.strip_prefix("jdbc:").unwrap_or(&v);
    let Some(rest) = v.strip_prefix("postgresql").or_else(|| v.strip_prefix("postgres")) else { return false };
    if rest.starts_with("://") {
        return true;
    }
    // SQLAlchemy's dialect+driver: a driver name, then the URL.
    let Some(driver) = rest.strip_prefix('+') else { return false };
    match driver.split_once("://") {
        Some((name, _)) => !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        None => false,
    }
}

/// `keyword=value ...` with libpq's keywords only (values bare, or in
/// single quotes with `\'` and `\\` escapes; spaces around `=` allowed),
/// naming a server or a database.
fn is_conninfo(value: &str) -> bool {
    let mut keys = Vec::new();
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { return false };
        let key = key.trim();
        if !CONNINFO_KEYWORDS.contains(&key) {
            return false;
        }
        keys.push(key);
        let after = after.trim_start();
        rest = match after.strip_prefix('\'') {
            Some(quoted) => match closing_quote(quoted) {
                Some(end) => &quoted[end + 1..],
                None => return false,
            },
            None => after.find(char::is_whitespace).map_or("", |end| &after[end..]),
        }
        .trim_start();
    }
    keys.iter().any(|k| DESTINATION_KEYWORDS.contains(k))
}

/// Where a single-quoted conninfo value ends (its closing quote).
fn closing_quote(quoted: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in quoted.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '\'') => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleared(vars: &[(&str, &str)], kept: &[&str]) -> Vec<String> {
        let vars = vars.iter().map(|(n, v)| (OsString::from(n), OsString::from(v)));
        to_clear(vars, kept).into_iter().map(|n| n.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn libpq_variables_and_database_url_are_cleared_by_name_whatever_their_value() {
        for name in ["DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGOPTIONS"] {
            assert!(names_a_database(name, "x"), "{name}");
        }
        assert!(names_a_database("PGSSLMODE", "require") && names_a_database("PGSSLFUTURE", ""));
        assert!(names_a_database("PGSYSCONFDIR", "/etc/postgresql-common"), "where pg_service.conf is looked for");
        assert!(!names_a_database("PGDATA", "/var/lib/postgresql"), "the server's, not libpq's");
        assert!(!names_a_database("PATH", "/usr/bin") && !names_a_database("HOME", "/root"));
    }

    #[test]
    fn a_postgres_url_is_cleared_whatever_the_variable_is_called() {
        let urls = [
            "postgres://u:p@prod.example.com/app",
            "postgresql://u@/app?host=/var/run/postgresql",
            "postgresql+psycopg2://airflow:pw@db:5432/airflow",
            "postgresql+asyncpg://db/app",
            "POSTGRES://DB/APP",
            "jdbc:postgresql://db:5432/app",
            " 'postgres://db/app' ",
        ];
        for url in urls {
            assert!(names_a_database("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", url), "{url}");
        }
        for other in ["mysql://db/app", "postgres", "postgresql+://db", "postgres+ x://db", "https://postgres.example"]
        {
            assert!(!names_a_database("APP_URL", other), "{other}");
        }
    }

    #[test]
    fn a_conninfo_string_naming_a_server_or_database_is_cleared() {
        for value in [
            "host=prod.example.com dbname=app user=app",
            "dbname=app",
            "host = db port=5433",
            "service=prod",
            "host=db password='a b\\' c' dbname=app",
        ] {
            assert!(names_a_database("APP_DSN", value), "{value}");
        }
        for value in [
            "sslmode=require",
            "host=db and more words",
            "color=blue host=db",
            "host='unterminated",
            "",
            "key=value",
            "a=b=c",
        ] {
            assert!(!names_a_database("APP_DSN", value), "{value}");
        }
    }

    #[test]
    fn names_rehearse_sets_and_migrations_env_names_are_kept() {
        let vars = [
            ("DATABASE_URL", "postgres://prod/app"),
            ("APP_DATABASE_URL", "postgres://prod/app"),
            ("OTHER_URL", "postgresql://other/app"),
            ("PGSSLMODE", "verify-full"),
            ("PATH", "/usr/bin"),
            ("LEGACY_DSN", "host=prod dbname=app"),
        ];
        let kept = ["DATABASE_URL", "OTHER_URL"];
        assert_eq!(cleared(&vars, &kept), ["APP_DATABASE_URL", "LEGACY_DSN", "PGSSLMODE"]);
    }
}
