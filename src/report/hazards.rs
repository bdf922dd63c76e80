//! The run's hazards by rule, for the terminal and the Markdown summary: a
//! rule that fired 239 times is one line with its count and migrations,
//! while each migration's own section keeps every finding. Findings
//! `hazards.ignore` set aside are counted by rule, never shown as hazards;
//! its entries that named no pending migration are said, not only stored.

use super::{count, Hazard, MigrationReport, Report, UnusedHazardIgnore};
use crate::kinds::Rule;

/// One rule's findings across the run.
#[derive(Debug)]
pub struct RuleFindings<'a> {
    pub rule: Rule,
    /// How many findings.
    pub count: usize,
    /// The migrations that raised it, each once, in run order.
    pub migrations: Vec<&'a str>,
    /// Its fixes, each once (most rules have one).
    pub fixes: Vec<&'a str>,
    pub docs: &'a str,
}

/// Findings grouped by rule, most first; a tie keeps the order the rules
/// first fired in.
pub fn by_rule<'a>(findings: impl IntoIterator<Item = (&'a str, &'a Hazard)>) -> Vec<RuleFindings<'a>> {
    let mut groups: Vec<RuleFindings<'a>> = Vec::new();
    for (migration, h) in findings {
        let i = match groups.iter().position(|g| g.rule == h.rule) {
            Some(i) => i,
            None => {
                let g = RuleFindings { rule: h.rule, count: 0, migrations: vec![], fixes: vec![], docs: &h.docs };
                groups.push(g);
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        g.count += 1;
        if !g.migrations.contains(&migration) {
            g.migrations.push(migration);
        }
        if !g.fixes.contains(&h.fix.as_str()) {
            g.fixes.push(&h.fix);
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
}

/// The run's hazards to act on, by rule.
pub fn found(r: &Report) -> Vec<RuleFindings<'_>> {
    by_rule(r.migrations.iter().flat_map(|m| m.hazards.iter().map(move |h| (m.id.as_str(), h))))
}

/// The run's findings `hazards.ignore` set aside, by rule.
pub fn ignored(r: &Report) -> Vec<RuleFindings<'_>> {
    by_rule(r.migrations.iter().flat_map(|m| m.ignored_hazards.iter().map(move |h| (m.id.as_str(), h))))
}

/// "×239 in 87 migrations (a, b, c and 84 more)", "in a and b": how often
/// and where, naming at most `shown` migrations.
pub fn where_found(g: &RuleFindings, shown: usize, code: bool) -> String {
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_string() };
    let times = if g.count > 1 { format!("×{} ", g.count) } else { String::new() };
    let ids: Vec<String> = g.migrations.iter().take(shown).map(|m| q(m)).collect();
    let more = g.migrations.len().saturating_sub(shown);
    match more {
        0 => format!("{times}in {}", and_list(&ids)),
        _ => format!(
            "{times}in {} ({} and {more} more)",
            count(g.migrations.len(), "migration", "migrations"),
            ids.join(", ")
        ),
    }
}

/// "no-lock-timeout ×10, create-index-non-concurrent": rules with their counts.
pub fn rule_counts(groups: &[RuleFindings]) -> String {
    let each: Vec<String> = groups
        .iter()
        .map(|g| if g.count > 1 { format!("{} ×{}", g.rule, g.count) } else { g.rule.to_string() })
        .collect();
    each.join(", ")
}

/// A migration's own hazards as rules with counts, for the riskiest-migration line.
pub fn migration_rule_counts(m: &MigrationReport) -> String {
    rule_counts(&by_rule(m.hazards.iter().map(|h| (m.id.as_str(), h))))
}

/// "12 hazards in 6 migrations".
pub fn found_heading(groups: &[RuleFindings]) -> String {
    let findings: usize = groups.iter().map(|g| g.count).sum();
    let mut migrations: Vec<&str> = groups.iter().flat_map(|g| g.migrations.iter().copied()).collect();
    migrations.sort_unstable();
    migrations.dedup();
    format!("{} in {}", count(findings, "hazard", "hazards"), count(migrations.len(), "migration", "migrations"))
}

/// "239 ignored by hazards.ignore: no-lock-timeout ×239", or None.
pub fn ignored_line(r: &Report, code: bool) -> Option<String> {
    let groups = ignored(r);
    let n: usize = groups.iter().map(|g| g.count).sum();
    let key = if code { "`hazards.ignore`" } else { "hazards.ignore" };
    (n > 0).then(|| format!("{} ignored by {key}: {}", count(n, "hazard", "hazards"), rule_counts(&groups)))
}

/// What follows `hazards.ignore` when some of its migrations are not pending.
pub const UNUSED_IGNORES: &str = "names migrations that are not pending, so nothing was ignored for them";

/// "set-not-null for 0099_typo (...)": the entries of `hazards.ignore` that
/// named no pending migration, and what to do; None when there are none.
pub fn unused_ignores(unused: &[UnusedHazardIgnore], code: bool) -> Option<String> {
    if unused.is_empty() {
        return None;
    }
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_string() };
    let pairs: Vec<String> = unused.iter().map(|u| format!("{} for {}", q(u.rule.as_str()), q(&u.migration))).collect();
    Some(format!(
        "{} (name a migration as this report does, or by its bare revision; remove an entry whose migration was \
         applied)",
        pairs.join("; ")
    ))
}

/// The terminal's lines: the hazards by rule, then how many were ignored,
/// then `hazards.ignore`'s entries that matched nothing.
pub fn text_lines(r: &Report) -> Vec<String> {
    const SHOWN: usize = 3;
    let mut out = Vec::new();
    let groups = found(r);
    if !groups.is_empty() {
        out.push(format!("{}, by rule:", found_heading(&groups)));
        out.extend(groups.iter().map(|g| format!("  - {} {}", g.rule, where_found(g, SHOWN, false))));
    }
    out.extend(ignored_line(r, false));
    out.extend(
        unused_ignores(&r.hazards.unused_ignores, false).map(|u| format!("hazards.ignore {UNUSED_IGNORES}: {u}")),
    );
    out
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Report {
        serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).unwrap()
    }

    fn hazard(rule: Rule) -> Hazard {
        Hazard {
            rule,
            message: format!("{rule} happened"),
            evidence: "measured".into(),
            fix: format!("fix {rule}"),
            docs: rule.docs(),
        }
    }

    /// Eight migrations: each has two no-lock-timeout findings, the second
    /// also a create-index-non-concurrent one.
    fn many() -> Report {
        let mut r = demo();
        let template = r.migrations[0].clone();
        r.migrations = (1..=8)
            .map(|i| {
                let mut hazards = vec![hazard(Rule::NoLockTimeout), hazard(Rule::NoLockTimeout)];
                if i == 2 {
                    hazards.push(hazard(Rule::CreateIndexNonConcurrent));
                }
                MigrationReport { id: format!("m{i}"), hazards, ..template.clone() }
            })
            .collect();
        r
    }

    #[test]
    fn findings_of_one_rule_are_one_line_with_their_count_and_migrations() {
        let lines = text_lines(&many());
        assert_eq!(
            lines,
            [
                "17 hazards in 8 migrations, by rule:",
                "  - no-lock-timeout ×16 in 8 migrations (m1, m2, m3 and 5 more)",
                "  - create-index-non-concurrent in m2",
            ]
        );
        let report = many();
        let groups = found(&report);
        assert_eq!(groups[0].fixes, ["fix no-lock-timeout"], "one fix, however many findings");
        assert_eq!(where_found(&groups[0], 10, true), "×16 in `m1`, `m2`, `m3`, `m4`, `m5`, `m6`, `m7` and `m8`");
    }

    #[test]
    fn ignored_findings_are_counted_by_rule_and_unused_entries_are_said() {
        let mut r = many();
        for m in &mut r.migrations {
            m.ignored_hazards = std::mem::take(&mut m.hazards);
        }
        let second = &mut r.migrations[1];
        second.hazards.extend(second.ignored_hazards.pop());
        r.hazards.unused_ignores = vec![UnusedHazardIgnore { rule: Rule::SetNotNull, migration: "m99".into() }];
        let lines = text_lines(&r);
        assert_eq!(
            lines[..3],
            [
                "1 hazard in 1 migration, by rule:",
                "  - create-index-non-concurrent in m2",
                "16 hazards ignored by hazards.ignore: no-lock-timeout ×16"
            ]
        );
        assert!(
            lines[3].starts_with("hazards.ignore names migrations that are not pending")
                && lines[3].contains("set-not-null for m99"),
            "{}",
            lines[3]
        );
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn a_migrations_own_hazards_are_grouped_too() {
        let r = many();
        assert_eq!(migration_rule_counts(&r.migrations[1]), "no-lock-timeout ×2, create-index-non-concurrent");
    }
}
