//! Managed platforms' profiles (`postgres.platform`): what RDS, Aurora,
//! Cloud SQL and Azure refuse a non-superuser, as data. Each profile is a
//! file in `data/platforms/`, embedded at build time: the extensions the
//! platform offers for each PostgreSQL major, and its pseudo-superuser role
//! (`rds_superuser`, `cloudsqlsuperuser`, `azure_pg_admin`), each with the
//! documentation page it was taken from, the date it was read, and whether
//! it was checked entry by entry against that page. The copy is made to
//! refuse the same (see `guard` and `run::platform`).

pub mod guard;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

pub use crate::kinds::Platform;

/// A platform's profile, as its data file says.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The platform as its vendor names it ("Amazon RDS for PostgreSQL").
    pub name: String,
    pub pseudo_superuser: PseudoSuperuser,
    /// The extensions offered, by PostgreSQL major ("15", "18").
    pub extensions: BTreeMap<String, ExtensionList>,
    /// The data file, relative to the repository (`data/platforms/rds.yaml`).
    #[serde(skip)]
    pub file: &'static str,
}

/// The role the platform gives its customers instead of a superuser.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudoSuperuser {
    pub name: String,
    /// `CREATE ROLE` options, each said (`NOLOGIN`, `CREATEROLE`, ...); never `SUPERUSER`.
    pub attributes: Vec<String>,
    /// Predefined roles (`pg_signal_backend`, ...) it is a member of.
    pub member_of: Vec<String>,
    /// Whether its members may create the offered extensions (`CREATE` on the database).
    pub creates_extensions: bool,
    #[serde(flatten)]
    pub origin: Origin,
}

/// The extensions a platform offers for one major.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionList {
    pub names: Vec<String>,
    #[serde(flatten)]
    pub origin: Origin,
}

/// Where a piece of a profile comes from.
#[derive(Debug, Clone, Deserialize)]
pub struct Origin {
    /// The documentation page it was taken from.
    pub source: String,
    /// When that page was read (YYYY-MM-DD).
    pub read: String,
    /// Whether it was checked entry by entry against the page; false: written
    /// from knowledge of it (the file says why).
    pub checked: bool,
}

/// The `CREATE ROLE` options a profile may give its pseudo-superuser.
const ROLE_OPTIONS: &[&str] = &[
    "NOLOGIN",
    "NOSUPERUSER",
    "INHERIT",
    "NOINHERIT",
    "CREATEROLE",
    "NOCREATEROLE",
    "CREATEDB",
    "NOCREATEDB",
    "REPLICATION",
    "NOREPLICATION",
    "BYPASSRLS",
    "NOBYPASSRLS",
];

const FILES: [(Platform, &str, &str); 4] = [
    (Platform::Rds, "data/platforms/rds.yaml", include_str!("../../data/platforms/rds.yaml")),
    (Platform::Aurora, "data/platforms/aurora.yaml", include_str!("../../data/platforms/aurora.yaml")),
    (Platform::CloudSql, "data/platforms/cloudsql.yaml", include_str!("../../data/platforms/cloudsql.yaml")),
    (Platform::Azure, "data/platforms/azure.yaml", include_str!("../../data/platforms/azure.yaml")),
];

/// The platform's profile; none for `self-managed`.
pub fn profile(platform: Platform) -> Option<&'static Profile> {
    static PROFILES: OnceLock<Vec<(Platform, Profile)>> = OnceLock::new();
    let all = PROFILES.get_or_init(|| FILES.iter().map(|(p, file, text)| (*p, parse(file, text))).collect());
    all.iter().find(|(p, _)| *p == platform).map(|(_, profile)| profile)
}

/// A profile from its embedded file. The files are part of the build and
/// checked by the unit tests below: a malformed one is a bug, not input.
fn parse(file: &'static str, text: &str) -> Profile {
    let mut profile: Profile = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
    profile.file = file;
    let role = &profile.pseudo_superuser;
    if let Some(bad) = role.attributes.iter().find(|a| !ROLE_OPTIONS.contains(&a.as_str())) {
        panic!("{file}: pseudo_superuser.attributes: {bad} is not one of {}", ROLE_OPTIONS.join(", "));
    }
    profile
}

impl Profile {
    /// The extensions offered for PostgreSQL `major`; Err: the majors the file has lists for.
    pub fn extensions_for(&self, major: i32) -> Result<&ExtensionList, String> {
        self.extensions.get(&major.to_string()).ok_or_else(|| self.majors())
    }

    /// The majors with a list, as "15, 18".
    pub fn majors(&self) -> String {
        let mut majors: Vec<i32> = self.extensions.keys().filter_map(|k| k.parse().ok()).collect();
        majors.sort();
        majors.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
    }
}

impl Origin {
    /// "from <URL> read <date>", and that it was not checked when it was not.
    pub fn shown(&self) -> String {
        let unchecked = if self.checked { "" } else { ", not checked entry by entry against it" };
        format!("from {} read {}{unchecked}", self.source, self.read)
    }
}

/// Every managed platform (not `self-managed`), as the scenario spells them.
pub fn managed() -> impl Iterator<Item = Platform> {
    Platform::ALL.into_iter().filter(|p| *p != Platform::SelfManaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_managed_platform_has_a_profile_with_lists_that_say_where_they_come_from() {
        for platform in managed() {
            let profile = profile(platform).unwrap_or_else(|| panic!("{platform}: no profile"));
            assert!(!profile.name.is_empty(), "{platform}");
            assert!(profile.extensions.contains_key("15"), "{platform}: no list for 15");
            for (major, list) in &profile.extensions {
                assert!(major.parse::<i32>().is_ok(), "{platform}: {major} is not a major");
                assert!(!list.names.is_empty(), "{platform} {major}: empty list");
                assert!(list.names.iter().any(|n| n == "plpgsql"), "{platform} {major}: plpgsql is always there");
                assert_origin(&list.origin, &format!("{platform} {major}"));
            }
            let role = &profile.pseudo_superuser;
            assert!(!role.name.is_empty() && !role.name.starts_with("pg_"), "{platform}: {}", role.name);
            assert!(role.attributes.iter().any(|a| a == "NOSUPERUSER"), "{platform}: said NOSUPERUSER");
            assert!(role.member_of.iter().all(|r| r.starts_with("pg_")), "{platform}: predefined roles only");
            assert_origin(&role.origin, &format!("{platform} pseudo_superuser"));
        }
        assert!(profile(Platform::SelfManaged).is_none());
    }

    fn assert_origin(origin: &Origin, what: &str) {
        assert!(origin.source.starts_with("https://"), "{what}: source {}", origin.source);
        let date: Vec<&str> = origin.read.split('-').collect();
        assert!(
            date.len() == 3 && date[0].len() == 4 && date.iter().all(|p| p.parse::<u32>().is_ok()),
            "{what}: read {} is not YYYY-MM-DD",
            origin.read
        );
    }

    #[test]
    fn rds_offers_pgcrypto_and_hstore_but_not_file_fdw_or_adminpack() {
        let rds = profile(Platform::Rds).unwrap();
        let fifteen = rds.extensions_for(15).unwrap();
        for offered in ["pgcrypto", "hstore", "pg_stat_statements"] {
            assert!(fifteen.names.iter().any(|n| n == offered), "{offered}");
        }
        for refused in ["file_fdw", "adminpack", "plpython3u", "pg_surgery"] {
            assert!(!fifteen.names.iter().any(|n| n == refused), "{refused}");
        }
        assert_eq!(rds.pseudo_superuser.name, "rds_superuser");
    }

    #[test]
    fn a_major_without_a_list_names_the_majors_there_are() {
        let aurora = profile(Platform::Aurora).unwrap();
        assert_eq!(aurora.extensions_for(16).unwrap_err(), aurora.majors());
        assert!(aurora.majors().contains("15"));
    }
}
