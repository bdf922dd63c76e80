//! `production:`: production's migration role and settings, as `rehearse
//! stats --role` recorded them, reproduced on the copy: the role the
//! migrations run as (`as_role`) and the server settings (`settings`).

use std::path::PathBuf;

use super::scenario::ProductionSection;
use super::Origin;
use crate::error::{ErrorKind, Result};
use crate::estimate::stats::{MigrationRole, ProductionStats};

/// Server settings a throwaway server cannot take, and why.
const FIXED: &[(&str, &str)] = &[("data_checksums", "fixed when the cluster is made (initdb --data-checksums)")];

/// What the rehearsal reproduces of production.
#[derive(Debug, Clone)]
pub struct ProductionPlan {
    /// The stats file (`production.stats`).
    pub stats: PathBuf,
    /// The role the migrations run as (`as_role: true`).
    pub role: Option<MigrationRole>,
    /// Production's server-level settings to apply (`settings: true`), by name.
    pub settings: Vec<(String, String)>,
    /// Settings recorded but not applied, with why.
    pub not_applied: Vec<(String, String)>,
}

/// The scenario's `production:`, its stats file read and checked.
/// `scenario`: `postgres.settings`, which win over production's on a name both set.
pub(super) fn plan(
    section: Option<&ProductionSection>,
    origin: &Origin,
    scenario: &[(String, String)],
) -> Result<Option<ProductionPlan>> {
    let Some(p) = section else { return Ok(None) };
    let path = origin.in_scenario(p.stats.as_str());
    let stats = ProductionStats::load(&path).map_err(|e| e.context("production.stats"))?;
    let role = match (p.as_role, stats.role) {
        (false, _) => None,
        (true, Some(role)) => Some(role),
        (true, None) => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{}: production.as_role is true, but {} recorded no migration role (an older rehearse made it): \
                 make it again with `rehearse stats --role NAME --url URL --out {}`",
                origin.shown(),
                path.display(),
                path.display()
            )))
        }
    };
    if p.settings && stats.server_settings.is_empty() {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{}: production.settings is true, but {} recorded no server settings (an older rehearse made it): \
             make it again with `rehearse stats --role NAME --url URL --out {}`",
            origin.shown(),
            path.display(),
            path.display()
        )));
    }
    let (mut settings, mut not_applied) = (Vec::new(), Vec::new());
    for (name, value) in stats.server_settings.into_iter().filter(|_| p.settings) {
        let theirs = scenario.iter().find(|(n, _)| *n == name);
        match (FIXED.iter().find(|(fixed, _)| *fixed == name), theirs) {
            (Some((_, why)), _) => not_applied.push((format!("{name} = {value}"), why.to_string())),
            (None, Some((_, v))) => {
                not_applied.push((format!("{name} = {value}"), format!("postgres.settings sets it to {v}")))
            }
            (None, None) => settings.push((name, value)),
        }
    }
    Ok(Some(ProductionPlan { stats: path, role, settings, not_applied }))
}

impl ProductionPlan {
    /// The scenario's settings with production's added (none share a name).
    pub fn merged_settings(&self, scenario: &[(String, String)]) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = scenario.iter().chain(&self.settings).cloned().collect();
        all.sort();
        all
    }

    /// Whether `name` is one of production's server settings, not the scenario's.
    pub fn sets(&self, name: &str) -> bool {
        self.settings.iter().any(|(n, _)| n == name)
    }
}
