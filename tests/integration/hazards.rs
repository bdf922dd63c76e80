//! Every hazard rule fires on its bad example and not on its safe
//! alternative, rehearsed against real data; every rule has both examples
//! and a section in docs/hazards.md.

use rehearse::kinds::Rule;
use rehearse::report::{MigrationReport, MigrationStatus};

use crate::support::{dumps, Sandbox, REPO};

/// Rehearses one example per rule, in `Rule::ALL` order, one migration each.
fn rehearse_examples(pick: fn((&'static str, &'static str)) -> &'static str) -> Vec<MigrationReport> {
    let sandbox = Sandbox::new();
    let files: Vec<(String, &str)> = Rule::ALL
        .iter()
        .enumerate()
        .map(|(i, rule)| (format!("{:04}_{}.sql", i + 1, rule.as_str().replace('-', "_")), pick(rule.examples())))
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
    m.hazards.iter().any(|h| h.rule == rule)
}

#[test]
fn every_rule_fires_on_its_bad_example_with_evidence() {
    let migrations = rehearse_examples(|(bad, _)| bad);
    let mut silent = Vec::new();
    for (rule, m) in Rule::ALL.iter().zip(&migrations) {
        match m.hazards.iter().find(|h| h.rule == *rule) {
            Some(h) => {
                assert!(!h.evidence.is_empty() && !h.fix.is_empty(), "{h:?}");
                assert_eq!(h.docs, format!("docs/hazards.md#{rule}"));
            }
            None => silent.push(format!("{rule}: {:?}", m.hazards.iter().map(|h| h.rule).collect::<Vec<_>>())),
        }
    }
    assert!(silent.is_empty(), "rules that did not fire on their bad example:\n{}", silent.join("\n"));
    // Evidence is measured: the index build's lock names the table's size and hold.
    let create_index = &migrations[0];
    let h = create_index.hazards.iter().find(|h| h.rule == Rule::CreateIndexNonConcurrent).unwrap();
    assert!(h.message.contains("ShareLock on public.orders (12000 rows"), "{}", h.message);
}

#[test]
fn no_rule_fires_on_its_safe_alternative() {
    let migrations = rehearse_examples(|(_, good)| good);
    let noisy: Vec<String> = Rule::ALL
        .iter()
        .zip(&migrations)
        .filter(|(rule, m)| fired(m, **rule))
        .map(|(rule, m)| format!("{rule}: {:?}", m.hazards))
        .collect();
    assert!(noisy.is_empty(), "rules that fired on their safe alternative:\n{}", noisy.join("\n"));
}

#[test]
fn every_rule_has_examples_and_docs() {
    let docs = std::fs::read_to_string(format!("{REPO}/docs/hazards.md")).expect("docs/hazards.md");
    for rule in Rule::ALL {
        let (bad, good) = rule.examples();
        assert!(!bad.trim().is_empty() && !good.trim().is_empty(), "{rule} lacks an example");
        assert_ne!(bad, good);
        assert!(docs.contains(&format!("## {rule}")), "docs/hazards.md has no section `## {rule}`");
    }
}

fn rules(hazards: &[rehearse::report::Hazard]) -> Vec<Rule> {
    hazards.iter().map(|h| h.rule).collect()
}

/// `hazards.ignore` sets no-lock-timeout aside everywhere and
/// create-index-non-concurrent in one migration: those findings move to
/// `ignored_hazards` (kept, not dropped), the terminal and the Markdown
/// count them by rule, the rest are grouped one line a rule, and an entry
/// naming a migration that is not pending is said in every format.
#[test]
fn ignored_rules_are_kept_apart_counted_and_the_rest_grouped_by_rule() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_index_orders_total.sql", "CREATE INDEX orders_total_idx ON public.orders (total);"),
        ("0002_index_orders_customer.sql", "CREATE INDEX orders_customer_idx ON public.orders (customer_id);"),
        ("0003_index_customers_name.sql", "CREATE INDEX customers_name_idx ON public.customers (name);"),
    ]);
    let scenario = sandbox.scenario(
        &dumps().path("custom"),
        "hazards:\n  ignore:\n    - no-lock-timeout\n    - rule: create-index-non-concurrent\n      migrations: [0001_index_orders_total, 0099_gone]\n",
    );
    // Unbounded width: one line per rule, whatever the test's terminal.
    let out = sandbox.rehearse_env(&["run", scenario.to_str().unwrap()], &[("COLUMNS", "1000")]);
    out.assert_code(0);
    sandbox.assert_no_leaks();

    let report = out.report();
    let m = &report.migrations;
    assert!(m.iter().all(|m| m.status == MigrationStatus::Applied));
    assert_eq!(rules(&m[0].hazards), []);
    assert_eq!(rules(&m[0].ignored_hazards), [Rule::CreateIndexNonConcurrent, Rule::NoLockTimeout]);
    for later in &m[1..] {
        assert_eq!(rules(&later.hazards), [Rule::CreateIndexNonConcurrent], "{}", later.id);
        assert_eq!(rules(&later.ignored_hazards), [Rule::NoLockTimeout], "{}", later.id);
    }
    let ignored = &m[0].ignored_hazards[0];
    assert!(ignored.message.contains("ShareLock on public.orders"), "kept whole: {ignored:?}");
    let json: serde_json::Value = serde_json::from_str(&out.json_text()).unwrap();
    assert_eq!(
        json["hazards"],
        serde_json::json!({
            "ignore": [
                {"rule": "no-lock-timeout", "migrations": null},
                {"rule": "create-index-non-concurrent", "migrations": ["0001_index_orders_total", "0099_gone"]}
            ],
            "unused_ignores": [{"rule": "create-index-non-concurrent", "migration": "0099_gone"}]
        })
    );

    let stdout = &out.stdout;
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.starts_with(['┌', '│', '╞', '├', '└'])).collect();
    assert_eq!(lines[0], "2 hazards in 2 migrations, by rule:", "{stdout}");
    assert_eq!(
        lines[1], "  - create-index-non-concurrent ×2 in 0002_index_orders_customer and 0003_index_customers_name",
        "{stdout}"
    );
    assert_eq!(lines[2], "4 hazards ignored by hazards.ignore: no-lock-timeout ×3, create-index-non-concurrent");
    assert!(
        lines[3].starts_with("hazards.ignore names migrations that are not pending")
            && lines[3].contains("create-index-non-concurrent for 0099_gone"),
        "{stdout}"
    );
    assert!(lines[4].starts_with("PASSED"), "{stdout}");
    // The table's hazard column counts only the hazards to act on.
    let row = |id: &str| stdout.lines().find(|l| l.contains(id)).unwrap().trim_end_matches('│').trim().to_string();
    assert!(row("0001_index_orders_total").ends_with('-'), "{stdout}");
    assert!(row("0002_index_orders_customer").ends_with('1'), "{stdout}");

    let md = out.markdown();
    let section = md.split("## Hazards\n").nth(1).and_then(|s| s.split("\n### ").next()).expect("a Hazards section");
    assert!(section.starts_with("\n2 hazards in 2 migrations, by rule;"), "{section}");
    assert!(
        section.contains(
            "- **create-index-non-concurrent** ×2 in `0002_index_orders_customer` and `0003_index_customers_name`. Fix: build the index with CREATE INDEX CONCURRENTLY"
        ),
        "{section}"
    );
    assert!(!section.contains("**no-lock-timeout**"), "ignored, so not listed as a hazard: {section}");
    assert!(
        section.contains("4 hazards ignored by `hazards.ignore`: no-lock-timeout ×3, create-index-non-concurrent"),
        "{section}"
    );
    assert!(section.contains("`create-index-non-concurrent` for `0099_gone`"), "{section}");
    let first = md.split("### `0001_index_orders_total`").nth(1).unwrap().split("\n### ").next().unwrap();
    assert!(first.contains("- Ignored by `hazards.ignore`: create-index-non-concurrent, no-lock-timeout."), "{first}");
    assert!(!first.contains("- **create-index-non-concurrent**"), "{first}");
}
