//! Migration file names: the version prefix that orders them, and which
//! files are not forward migrations.

use std::path::PathBuf;

/// A migration file and its parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFile {
    pub path: PathBuf,
    /// Numeric components of the version prefix, for natural ordering.
    pub version: Vec<u128>,
    pub description: String,
}

impl SqlFile {
    pub fn normalized_version(&self) -> String {
        normalize(&self.version)
    }

    pub(super) fn id(&self) -> String {
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.trim_end_matches(".sql").trim_end_matches(".up").to_string()
    }
}

pub(super) fn normalize(version: &[u128]) -> String {
    version.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(".")
}

/// Reads a version prefix from a file name: `V2__x.sql` (Flyway: `__`
/// separates, `.` or `_` split components), `0003_x.sql`, `20240101120000_x.up.sql`.
/// Returns None for files that are not forward migrations (`.down.sql`,
/// Flyway's repeatable `R__` and undo `U1__`) and Err for a file with no version.
pub fn parse_file_name(name: &str) -> Option<Result<(Vec<u128>, String), String>> {
    let stem = name.strip_suffix(".sql")?;
    if stem.ends_with(".down") || stem.starts_with("R__") || (stem.starts_with('U') && stem.contains("__")) {
        return None;
    }
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
    Some(match version {
        Some(v) if !v.is_empty() => Ok((v, description.replace(['_', '-'], " ").trim().to_string())),
        _ => Err(format!(
            "migration file {name} has no version prefix: name it like 0001_add_users.sql, V1__add_users.sql \
             or 20240101120000_add_users.sql"
        )),
    })
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
}
