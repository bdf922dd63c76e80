//! `production` in report.json: what the copy took of production's
//! migration role and settings (`production:` in the scenario), each
//! setting with where it came from, and what could not be reproduced.

use serde::{Deserialize, Serialize};

/// Production's role and settings as reproduced on the copy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductionReport {
    /// The `rehearse stats` file they were read from.
    pub stats: String,
    /// The role the migrations ran as (logged in as it); null: the superuser.
    pub role: Option<String>,
    /// Whether rehearse created the role (false: the dump or the server had it).
    #[serde(default)]
    pub role_created: bool,
    /// The roles it was made a member of, as in production.
    #[serde(default)]
    pub member_of: Vec<String>,
    /// Each setting applied, with where it came from.
    pub applied: Vec<AppliedSetting>,
    /// What was recorded but not reproduced, with why.
    pub not_applied: Vec<NotReproduced>,
}

/// A setting production has, applied on the copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedSetting {
    pub name: String,
    pub value: String,
    pub from: SettingOrigin,
}

/// Where production sets it, and so how the copy applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingOrigin {
    /// The server's configuration: ALTER SYSTEM and a reload on the copy.
    Server,
    /// `ALTER ROLE r IN DATABASE d SET`.
    RoleInDatabase,
    /// `ALTER ROLE r SET`.
    Role,
    /// `ALTER DATABASE d SET`.
    Database,
}

/// Something recorded of production that the copy does not have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotReproduced {
    /// The setting (`name = value`), attribute or membership.
    pub what: String,
    pub why: String,
}

impl ProductionReport {
    /// The report.md Environment line.
    pub fn line(&self) -> String {
        let applied: Vec<String> =
            self.applied.iter().map(|s| format!("`{}={}` ({})", s.name, s.value, s.from.shown())).collect();
        let role = match &self.role {
            Some(r) => format!("migrations ran as production's role `{r}`"),
            None => "migrations ran as the superuser".to_string(),
        };
        let mut line = format!("Production ({}): {role}", self.stats);
        if !applied.is_empty() {
            line.push_str(&format!("; settings applied: {}", applied.join(", ")));
        }
        if !self.not_applied.is_empty() {
            let not: Vec<String> = self.not_applied.iter().map(|n| format!("{} ({})", n.what, n.why)).collect();
            line.push_str(&format!("; not reproduced: {}", not.join("; ")));
        }
        line
    }
}

impl SettingOrigin {
    fn shown(self) -> &'static str {
        match self {
            SettingOrigin::Server => "server",
            SettingOrigin::RoleInDatabase => "role in database",
            SettingOrigin::Role => "role",
            SettingOrigin::Database => "database",
        }
    }
}
