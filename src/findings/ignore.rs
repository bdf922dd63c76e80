//! `hazards.ignore`: rules a team sets aside, everywhere or for some
//! migrations, because it cannot act on them (advice for the authors of a
//! third-party app's migrations). Their findings are kept apart in the
//! report, never dropped; an entry naming a migration that is not pending
//! is reported, as a mistyped budget override is.

use super::hazards::Rule;
use crate::report::{HazardIgnoreEntry, HazardsInfo, MigrationReport, UnusedHazardIgnore};

/// One entry of `hazards.ignore`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredRule {
    pub rule: Rule,
    /// The migrations it is ignored for, as the scenario names them (an id,
    /// or a bare revision in any app); None: every migration.
    pub migrations: Option<Vec<String>>,
}

/// Every entry of `hazards.ignore`, in the scenario's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HazardIgnore(pub Vec<IgnoredRule>);

impl HazardIgnore {
    /// Whether `rule`'s findings in `migration` are set aside.
    pub fn covers(&self, rule: Rule, migration: &MigrationReport) -> bool {
        self.0.iter().filter(|e| e.rule == rule).any(|e| match &e.migrations {
            None => true,
            Some(keys) => keys.iter().any(|k| migration.answers_to(k)),
        })
    }

    /// The entries as the report records them, before the run knows which were used.
    pub fn info(&self) -> HazardsInfo {
        let ignore =
            self.0.iter().map(|e| HazardIgnoreEntry { rule: e.rule, migrations: e.migrations.clone() }).collect();
        HazardsInfo { ignore, unused_ignores: Vec::new() }
    }

    /// The (rule, migration) pairs whose migration is none of `pending`.
    pub fn unused(&self, pending: &[MigrationReport]) -> Vec<UnusedHazardIgnore> {
        let mut out = Vec::new();
        for e in &self.0 {
            for key in e.migrations.iter().flatten() {
                if !pending.iter().any(|m| m.answers_to(key)) {
                    out.push(UnusedHazardIgnore { rule: e.rule, migration: key.clone() });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(id: &str) -> MigrationReport {
        let report: crate::report::Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).unwrap();
        MigrationReport { id: id.into(), ..report.migrations[0].clone() }
    }

    #[test]
    fn a_rule_is_ignored_everywhere_or_for_the_migrations_named_by_id_or_bare_revision() {
        let ignore = HazardIgnore(vec![
            IgnoredRule { rule: Rule::NoLockTimeout, migrations: None },
            IgnoredRule { rule: Rule::SetNotNull, migrations: Some(vec!["billing/b2".into(), "a1".into()]) },
        ]);
        assert!(ignore.covers(Rule::NoLockTimeout, &migration("x")));
        assert!(ignore.covers(Rule::SetNotNull, &migration("billing/b2")));
        assert!(!ignore.covers(Rule::SetNotNull, &migration("orders/b2")), "app/revision names that app's only");
        assert!(ignore.covers(Rule::SetNotNull, &migration("orders/a1")), "a bare revision, in any app");
        assert!(!ignore.covers(Rule::SetNotNull, &migration("x")));
        assert!(!ignore.covers(Rule::CreateIndexNonConcurrent, &migration("x")));
        let pending = [migration("billing/b2"), migration("x")];
        let unused = ignore.unused(&pending);
        assert_eq!(unused, vec![UnusedHazardIgnore { rule: Rule::SetNotNull, migration: "a1".into() }]);
    }
}
