//! The scenario's `abort:` as the abort stage's plan: which migrations are
//! cancelled (named, or the longest the rehearsal measured) and when (`at`:
//! a share of the migration's rehearsed time, the first lock that blocks
//! reads or writes, or a duration). Names are checked against the pending
//! migrations once they are discovered ([`AbortPlan::check_pending`]),
//! still before the first migration runs.

use std::time::Duration;

use super::scenario::{AbortMigrationsSection, Scenario};
use super::Origin;
use crate::error::{ErrorKind, Result};

/// `abort:` resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AbortPlan {
    pub migrations: AbortMigrations,
    pub at: AbortAt,
    /// `at` as the scenario wrote it, for the report.
    pub at_text: String,
}

/// Which migrations are cancelled.
#[derive(Debug, Clone, PartialEq)]
pub enum AbortMigrations {
    /// These ids (as the report names them: `app/id` with several apps).
    Named(Vec<String>),
    /// The migration the rehearsal measured longest.
    Longest,
}

/// When the cancel comes, from the migration's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AbortAt {
    /// This share (0 < share < 1) of the migration's rehearsed time.
    Share(f64),
    /// As soon as the migration holds a lock that blocks reads or writes (pg_locks).
    LockGranted,
    /// This long after it started.
    After(Duration),
}

/// `abort:` checked; None without it.
pub(super) fn plan(s: &Scenario, origin: &Origin) -> Result<Option<AbortPlan>> {
    let Some(section) = &s.abort else { return Ok(None) };
    let shown = origin.shown();
    let migrations = match &section.migrations {
        AbortMigrationsSection::Keyword(k) if k == "longest" => AbortMigrations::Longest,
        AbortMigrationsSection::Keyword(other) => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: abort.migrations is `{other}`: write `longest` (the longest rehearsed migration) or a list \
                 of migration ids, e.g. `migrations: [0010_index_orders]`"
            )))
        }
        AbortMigrationsSection::Ids(ids) if ids.is_empty() => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: abort.migrations is empty: name the migrations to cancel, or write `longest`"
            )))
        }
        AbortMigrationsSection::Ids(ids) => AbortMigrations::Named(ids.clone()),
    };
    let at =
        parse_at(&section.at).map_err(|why| ErrorKind::ScenarioInvalid.error(format!("{shown}: abort.at {why}")))?;
    Ok(Some(AbortPlan { migrations, at, at_text: section.at.trim().to_string() }))
}

/// `50%`, `lock_granted`, or a duration (`10s`, `1500ms`); the error says what is wrong.
fn parse_at(text: &str) -> std::result::Result<AbortAt, String> {
    let text = text.trim();
    if text == "lock_granted" {
        return Ok(AbortAt::LockGranted);
    }
    if let Some(number) = text.strip_suffix('%') {
        let share: f64 =
            number.trim().parse().map_err(|_| format!("is `{text}`: a share is a number of percent, e.g. `50%`"))?;
        // 0% is before the migration does anything, 100% after it is done: neither is an abort.
        if !(share > 0.0 && share < 100.0) {
            return Err(format!(
                "is `{text}`: a share of the migration's rehearsed time must be above 0% and below 100%"
            ));
        }
        return Ok(AbortAt::Share(share / 100.0));
    }
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(AbortAt::After(d)),
        Ok(_) => Err(format!("is `{text}`: the cancel must come after the migration starts (above 0s)")),
        Err(_) => Err(format!(
            "is `{text}`: write a share of the migration's rehearsed time (`50%`), `lock_granted` (as soon as it \
             holds a lock that blocks reads or writes), or a duration (`10s`)"
        )),
    }
}

impl AbortPlan {
    /// Every named migration is pending (`pending`: the ids as the report
    /// names them); else the scenario is wrong, and the run stops before
    /// the first migration runs.
    pub fn check_pending(&self, pending: &[String]) -> Result<()> {
        let AbortMigrations::Named(ids) = &self.migrations else { return Ok(()) };
        let missing: Vec<&str> = ids.iter().filter(|id| !pending.contains(id)).map(String::as_str).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let listed = match pending.len() {
            0 => "none is pending".to_string(),
            _ => format!("pending: {}", pending.join(", ")),
        };
        Err(ErrorKind::ScenarioInvalid.error(format!(
            "abort.migrations names {} that is not pending ({listed}): name a migration this release applies, or \
             write `longest`",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_takes_a_share_lock_granted_or_a_duration() {
        assert_eq!(parse_at("50%"), Ok(AbortAt::Share(0.5)));
        assert_eq!(parse_at(" lock_granted "), Ok(AbortAt::LockGranted));
        assert_eq!(parse_at("10s"), Ok(AbortAt::After(Duration::from_secs(10))));
        for bad in ["0%", "100%", "150%", "-5%", "x%", "soon", "0s"] {
            assert!(parse_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_named_migration_must_be_pending() {
        let plan = AbortPlan {
            migrations: AbortMigrations::Named(vec!["0002_b".into()]),
            at: AbortAt::LockGranted,
            at_text: "lock_granted".into(),
        };
        assert!(plan.check_pending(&["0001_a".into(), "0002_b".into()]).is_ok());
        let e = plan.check_pending(&["0001_a".into()]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ScenarioInvalid);
        assert!(e.to_string().contains("0002_b"));
    }
}
