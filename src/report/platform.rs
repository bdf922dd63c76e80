//! `platform` in report.json: the managed platform's limits the copy had
//! (`postgres.platform`): its pseudo-superuser, the extensions it offers and
//! where that list comes from, and what the copy could not reproduce.

use serde::{Deserialize, Serialize};

use crate::kinds::Platform;

/// A managed platform's profile as applied to the copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformReport {
    /// `postgres.platform`: `rds`, `aurora`, `cloudsql` or `azure`.
    pub platform: Platform,
    /// The platform as its vendor names it.
    pub name: String,
    /// The server's major, whose extension list applied.
    pub major: i32,
    /// The pseudo-superuser made on the copy; null when none was (the url backend).
    pub pseudo_superuser: Option<PseudoSuperuserReport>,
    /// The extension allowlist; null when it was not enforced (the url backend).
    pub extensions: Option<AllowlistReport>,
    /// What the copy does not reproduce of the platform, one sentence each.
    pub limitations: Vec<String>,
}

/// The platform's pseudo-superuser as made on the copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PseudoSuperuserReport {
    pub name: String,
    /// Whether rehearse created it (false: the dump's roles had made it, and rehearse altered it).
    pub created: bool,
    /// Its attributes, as `CREATE ROLE` options.
    pub attributes: Vec<String>,
    /// The predefined roles it was made a member of.
    pub member_of: Vec<String>,
    /// Whether it was granted CREATE on the rehearsal database (its members create the offered extensions).
    pub creates_extensions: bool,
    /// The documentation the attributes come from, and when it was read.
    pub source: String,
    pub read: String,
    pub checked: bool,
}

/// The extensions the platform offers for the major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllowlistReport {
    /// The data file (`data/platforms/rds.yaml`).
    pub file: String,
    /// The documentation page the list was taken from, when it was read, and
    /// whether it was checked entry by entry against it.
    pub source: String,
    pub read: String,
    pub checked: bool,
    /// How many extensions the list has.
    pub offered: usize,
    /// Offered by the platform and available here, but not marked trusted by
    /// PostgreSQL: only a superuser can create them on the copy.
    pub untrusted_offered: Vec<String>,
}

impl PlatformReport {
    /// The report.md Environment line.
    pub fn line(&self) -> String {
        let mut line = format!("Platform `{}` ({} {})", self.platform, self.name, self.major);
        if let Some(r) = &self.pseudo_superuser {
            let member = match r.member_of.is_empty() {
                true => String::new(),
                false => format!(", member of {}", r.member_of.join(", ")),
            };
            line.push_str(&format!(": `{}` ({}{member})", r.name, r.attributes.join(" ")));
        }
        if let Some(e) = &self.extensions {
            let checked = if e.checked { "" } else { ", not checked entry by entry against it" };
            line.push_str(&format!(
                "; CREATE EXTENSION refused outside its {} extensions ({}, from {} read {}{checked})",
                e.offered, e.file, e.source, e.read
            ));
        }
        if !self.limitations.is_empty() {
            line.push_str(&format!("; not reproduced: {}", self.limitations.join("; ")));
        }
        line
    }
}
