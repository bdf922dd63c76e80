//! The scenario's `drift:` as the drift stage's plan: the role the history
//! is built as, and what differences to leave out. Every source must be
//! buildable from empty: Alembic and SQL folders are; a command tool needs
//! `migrations.build`.

use super::scenario::{MigrationTool, Scenario};
use super::Origin;
use crate::error::{ErrorKind, Result};

/// `drift:` resolved.
#[derive(Debug, Clone, Default)]
pub struct DriftPlan {
    /// `drift.role`; None: the owner of the history table in the dump.
    pub role: Option<String>,
    /// `drift.ignore`, checked.
    pub ignore: crate::drift::Ignore,
    /// The patterns as written, for the report.
    pub ignore_text: Vec<String>,
}

/// The drift plan, when the scenario asks for one or `forced` (`rehearse drift`).
pub(super) fn plan(s: &Scenario, forced: bool, origin: &Origin) -> Result<Option<DriftPlan>> {
    let shown = origin.shown();
    let section = s.drift.as_ref();
    if !forced && !section.is_some_and(|d| d.enabled) {
        if s.budgets.fail_on_drift {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: budgets.fail_on_drift is true, but the scenario has no `drift: true`: add it, or run \
                 `rehearse drift {}`",
                origin.path.display()
            )));
        }
        return Ok(None);
    }
    for (i, m) in s.migrations.sources.iter().enumerate() {
        if m.tool == MigrationTool::Command && m.build.is_none() {
            let which = m.name.clone().unwrap_or_else(|| format!("migrations[{i}]"));
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: drift builds the whole history from empty, and {which} is a command tool without \
                 migrations.build: give the command that builds the schema from an empty database (`{{url}}` is \
                 replaced), e.g. `build: ./migrate.sh up --url {{url}}`"
            )));
        }
    }
    let keys = section.map(|d| &d.keys);
    let ignore_text: Vec<String> = keys.map(|k| k.ignore.clone()).unwrap_or_default();
    let ignore = crate::drift::Ignore::parse(&ignore_text)
        .map_err(|e| ErrorKind::ScenarioInvalid.error(format!("{shown}: drift.ignore: {e}")))?;
    Ok(Some(DriftPlan { role: keys.and_then(|k| k.role.clone()), ignore, ignore_text }))
}
