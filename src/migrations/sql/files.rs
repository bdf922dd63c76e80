//! Migration file names: what each file of the folder is (a versioned
//! migration and its version, a Flyway repeatable or callback), or why it is
//! not applied, as Flyway, golang-migrate, sqlx and dbmate name them.

use std::path::PathBuf;

use super::callbacks::{self, Event};
use crate::migrations::MigrationKind;

/// A file rehearse applies, and where it sits in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFile {
    pub path: PathBuf,
    /// The path relative to the folder, `/`-separated: what Flyway records
    /// as the migration's `script`.
    pub script: String,
    /// Numeric components of the version prefix, for natural ordering
    /// (empty for repeatables and callbacks).
    pub version: Vec<u128>,
    pub description: String,
    pub role: Role,
}

/// What a file applied by rehearse is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Versioned,
    /// Flyway's `R__name.sql`: applied again whenever its checksum changes.
    Repeatable,
    /// A Flyway callback script, run at its event.
    Callback(Event),
}

impl SqlFile {
    pub fn normalized_version(&self) -> String {
        normalize(&self.version)
    }

    pub fn kind(&self) -> MigrationKind {
        match self.role {
            Role::Versioned => MigrationKind::Versioned,
            Role::Repeatable => MigrationKind::Repeatable,
            Role::Callback(_) => MigrationKind::Callback,
        }
    }

    /// The file name without `.sql`/`.up.sql`: the migration's id.
    pub(super) fn id(&self) -> String {
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.trim_end_matches(".sql").trim_end_matches(".up").to_string()
    }
}

pub(super) fn normalize(version: &[u128]) -> String {
    version.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(".")
}

/// What a file's name says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileName {
    Versioned {
        version: Vec<u128>,
        description: String,
    },
    /// `R__refresh_views.sql`; the description as Flyway records it
    /// (`_` turned into spaces), which orders repeatables and matches them
    /// with the history.
    Repeatable {
        description: String,
    },
    /// `afterMigrate.sql`, `afterMigrate__refresh.sql`.
    Callback {
        event: Event,
        description: Option<String>,
    },
    /// A file rehearse does not apply, and why.
    NotApplied(String),
    /// A `.sql` file that is none of the above: bad input.
    Invalid,
}

/// Reads a file name: `V2__x.sql` (Flyway: `__` separates, `.` or `_`
/// split components), `0003_x.sql`, `20240101120000_x.up.sql`; Flyway's
/// `R__x.sql` repeatables and `<event>[__x].sql` callbacks. Down scripts,
/// Flyway's undo (`U1__`) and baseline (`B1__`) scripts, callbacks of events
/// a rehearsal does not fire and files that are not SQL are not applied.
pub fn classify(name: &str) -> FileName {
    if name.starts_with('.') {
        return FileName::NotApplied("hidden file".into());
    }
    let Some(stem) = name.strip_suffix(".sql") else {
        return FileName::NotApplied("not an SQL file (migrations end in .sql)".into());
    };
    if stem.ends_with(".down") {
        return FileName::NotApplied("down migration: rehearse applies forward migrations only".into());
    }
    if let Some(description) = stem.strip_prefix("R__") {
        return FileName::Repeatable { description: description.replace('_', " ") };
    }
    let (prefix, description) = match stem.split_once("__") {
        Some((p, d)) => (p, Some(d)),
        None => (stem, None),
    };
    if description.is_some() && versioned_prefix(prefix, 'U') {
        return FileName::NotApplied("Flyway undo migration: rehearse applies forward migrations only".into());
    }
    if description.is_some() && versioned_prefix(prefix, 'B') {
        return FileName::NotApplied(
            "Flyway baseline migration: Flyway applies it only to a new database, never to one with history".into(),
        );
    }
    if let Some(event) = Event::from_id(prefix) {
        return FileName::Callback { event, description: description.map(String::from) };
    }
    if let Some(reason) = callbacks::not_run(prefix) {
        return FileName::NotApplied(reason);
    }
    versioned(stem)
}

/// `U1__`, `B2.1__`: Flyway's letter followed by a version.
fn versioned_prefix(prefix: &str, letter: char) -> bool {
    prefix.strip_prefix(letter).is_some_and(|v| {
        v.starts_with(|c: char| c.is_ascii_digit()) && v.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '_')
    })
}

fn versioned(stem: &str) -> FileName {
    let stem = stem.strip_suffix(".up").unwrap_or(stem);
    let (version_text, description) = match stem.split_once("__") {
        Some((v, d)) => (v.strip_prefix(['V', 'v']).unwrap_or(v), d),
        None => {
            let digits = stem.find(|c: char| !c.is_ascii_digit()).unwrap_or(stem.len());
            (&stem[..digits], stem[digits..].trim_start_matches(['_', '-', '.']))
        }
    };
    let version: Option<Vec<u128>> =
        version_text.split(['.', '_']).map(|c| if c.is_empty() { None } else { c.parse().ok() }).collect();
    match version {
        Some(version) if !version.is_empty() => {
            FileName::Versioned { version, description: description.replace(['_', '-'], " ").trim().to_string() }
        }
        _ => FileName::Invalid,
    }
}

/// Why `shown` (a `.sql` file that is no migration rehearse knows) is refused.
pub fn invalid_name(shown: &str) -> String {
    format!(
        "migration file {shown} has no version prefix: name a versioned migration like 0001_add_users.sql, \
         V1__add_users.sql or 20240101120000_add_users.sql, a Flyway repeatable like R__refresh_views.sql, or a \
         Flyway callback after its event ({}, optionally with __description)",
        callbacks::run_ids().map(|id| format!("{id}.sql")).collect::<Vec<_>>().join(", ")
    )
}

/// The version and description of a versioned migration's file name. None
/// for files that are not versioned migrations (down, undo, baseline,
/// repeatable, callback, not SQL) and Err for a `.sql` file with no version.
pub fn parse_file_name(name: &str) -> Option<Result<(Vec<u128>, String), String>> {
    match classify(name) {
        FileName::Versioned { version, description } => Some(Ok((version, description))),
        FileName::Invalid => Some(Err(invalid_name(name))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str) -> Vec<u128> {
        parse_file_name(name).unwrap().unwrap().0
    }

    #[test]
    fn versions_order_naturally() {
        assert!(version("V2__x.sql") < version("V10__y.sql"));
        assert_eq!(version("0003_x.sql"), vec![3]);
        assert_eq!(version("V1_1__split.sql"), vec![1, 1]);
        assert_eq!(version("20240101120000_x.up.sql"), vec![20240101120000]);
        assert!(parse_file_name("20240101120000_x.down.sql").is_none());
        assert!(parse_file_name("R__views.sql").is_none());
        assert!(parse_file_name("README.md").is_none());
        assert!(parse_file_name("add_users.sql").unwrap().is_err());
    }

    #[test]
    fn flyway_names_are_classified() {
        assert_eq!(classify("R__active_users.sql"), FileName::Repeatable { description: "active users".into() });
        assert_eq!(classify("afterMigrate.sql"), FileName::Callback { event: Event::AfterMigrate, description: None });
        assert_eq!(
            classify("afterMigrate__refresh.sql"),
            FileName::Callback { event: Event::AfterMigrate, description: Some("refresh".into()) }
        );
        assert!(
            matches!(classify("afterMigrateError.sql"), FileName::NotApplied(r) if r.contains("afterMigrateError event"))
        );
        assert!(matches!(classify("U3__undo_x.sql"), FileName::NotApplied(r) if r.contains("undo")));
        assert!(matches!(classify("B5__baseline.sql"), FileName::NotApplied(r) if r.contains("baseline")));
        assert!(matches!(classify("README.md"), FileName::NotApplied(_)));
        assert_eq!(classify("Users__x.sql"), FileName::Invalid, "a U not followed by a version is no undo script");
        assert_eq!(classify("aftermigrate.sql"), FileName::Invalid, "event ids are case-sensitive, as in Flyway");
        assert!(invalid_name("x.sql").contains("afterMigrate.sql"));
    }
}
