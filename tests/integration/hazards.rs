//! Every hazard rule fires on its bad example and not on its safe
//! alternative, rehearsed against real data; every rule has both examples
//! and a section in docs/hazards.md.

use rehearse::findings::hazards::Rule;
use rehearse::report::{MigrationReport, MigrationStatus};

use crate::support::{dumps, Sandbox, REPO};

/// Rehearses one example per rule, in `Rule::ALL` order, one migration each.
fn rehearse_examples(pick: fn((&'static str, &'static str)) -> &'static str) -> Vec<MigrationReport> {
    let sandbox = Sandbox::new();
    let files: Vec<(String, &str)> = Rule::ALL
        .iter()
        .enumerate()
        .map(|(i, rule)| (format!("{:04}_{}.sql", i + 1, rule.id().replace('-', "_")), pick(rule.examples())))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    sandbox.migrations(&refs);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let migrations = out.report().migrations;
    assert_eq!(migrations.len(), Rule::ALL.len());
    assert!(migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    sandbox.assert_no_leaks();
    migrations
}

fn fired(m: &MigrationReport, rule: Rule) -> bool {
    m.hazards.iter().any(|h| h.rule == rule.id())
}

#[test]
fn every_rule_fires_on_its_bad_example_with_evidence() {
    let migrations = rehearse_examples(|(bad, _)| bad);
    let mut silent = Vec::new();
    for (rule, m) in Rule::ALL.iter().zip(&migrations) {
        match m.hazards.iter().find(|h| h.rule == rule.id()) {
            Some(h) => {
                assert!(!h.evidence.is_empty() && !h.fix.is_empty(), "{h:?}");
                assert_eq!(h.docs, format!("docs/hazards.md#{}", rule.id()));
            }
            None => silent.push(format!("{}: {:?}", rule.id(), m.hazards.iter().map(|h| &h.rule).collect::<Vec<_>>())),
        }
    }
    assert!(silent.is_empty(), "rules that did not fire on their bad example:\n{}", silent.join("\n"));
    // Evidence is measured: the index build's lock names the table's size and hold.
    let create_index = &migrations[0];
    let h = create_index.hazards.iter().find(|h| h.rule == "create-index-non-concurrent").unwrap();
    assert!(h.message.contains("ShareLock on public.orders (12000 rows"), "{}", h.message);
}

#[test]
fn no_rule_fires_on_its_safe_alternative() {
    let migrations = rehearse_examples(|(_, good)| good);
    let noisy: Vec<String> = Rule::ALL
        .iter()
        .zip(&migrations)
        .filter(|(rule, m)| fired(m, **rule))
        .map(|(rule, m)| format!("{}: {:?}", rule.id(), m.hazards))
        .collect();
    assert!(noisy.is_empty(), "rules that fired on their safe alternative:\n{}", noisy.join("\n"));
}

#[test]
fn every_rule_has_examples_and_docs() {
    let docs = std::fs::read_to_string(format!("{REPO}/docs/hazards.md")).expect("docs/hazards.md");
    for rule in Rule::ALL {
        let (bad, good) = rule.examples();
        assert!(!bad.trim().is_empty() && !good.trim().is_empty(), "{} lacks an example", rule.id());
        assert_ne!(bad, good);
        assert!(docs.contains(&format!("## {}", rule.id())), "docs/hazards.md has no section `## {}`", rule.id());
    }
}
