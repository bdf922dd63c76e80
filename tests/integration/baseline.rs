//! Comparing with last night's report: a migration that got slower is a
//! regression shown first in every format; one within the threshold is not;
//! a baseline that is missing or not a rehearse report is bad input.

use rehearse::report::RunStatus;

use crate::support::{dumps, junit_cases, Sandbox};

const MIGRATIONS: [(&str, &str); 2] =
    [("0001_slow.sql", "SELECT pg_sleep(2.2);\n"), ("0002_quick.sql", "CREATE TABLE public.quick (id int);\n")];

/// Last night's report.json, edited: `0001_slow` took half the time,
/// `0002_quick` was not there yet, and `0000_gone` was (applied in production since).
fn halved_baseline(report_json: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(report_json).unwrap();
    let migrations = v["migrations"].as_array_mut().unwrap();
    let slow = migrations.iter_mut().find(|m| m["id"] == "0001_slow").unwrap();
    slow["duration_ms"] = (slow["duration_ms"].as_u64().unwrap() / 2).into();
    let mut gone = slow.clone();
    gone["id"] = "0000_gone".into();
    migrations.retain(|m| m["id"] != "0002_quick");
    migrations.push(gone);
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn a_migration_that_took_twice_as_long_is_a_regression_shown_first() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&MIGRATIONS);
    let dump = dumps().path("custom");
    let formats = ["--format", "table,markdown,json,junit"];
    let first = sandbox.scenario(&dump, "");
    let tonight = sandbox.rehearse(&[&["run", first.to_str().unwrap()][..], &formats].concat());
    tonight.assert_code(0);
    let last_night = tonight.json_text();
    let halved = sandbox.write("halved.json", &halved_baseline(&last_night));
    let same = sandbox.write("same.json", &last_night);

    // --baseline, and a regression fails the run.
    let scenario = sandbox.scenario(&dump, "budgets:\n  fail_on_regression: true\n");
    let out = sandbox.rehearse(
        &[&["run", scenario.to_str().unwrap(), "--baseline", halved.to_str().unwrap()][..], &formats].concat(),
    );
    out.assert_code(1);
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    let b = report.baseline.as_ref().unwrap();
    assert_eq!(b.path, halved.display().to_string());
    let regressed: Vec<(&str, &str)> = b.regressions.iter().map(|g| (g.id.as_str(), g.metric.as_str())).collect();
    assert_eq!(regressed, [("0001_slow", "duration_ms")]);
    assert!(b.regressions[0].change_percent.unwrap() > 50.0, "{:?}", b.regressions[0]);
    assert_eq!(
        (b.new.as_slice(), b.vanished.as_slice()),
        (&["0002_quick".to_string()][..], &["0000_gone".to_string()][..])
    );
    assert_eq!(report.breaches.iter().map(|b| b.budget.as_str()).collect::<Vec<_>>(), ["fail_on_regression"]);
    let message = &b.regressions[0].message;
    assert!(message.starts_with("time 1.") && message.contains(" → 2."), "{message}");

    // At the top of every format.
    let table = &out.stdout;
    let at = |text: &str, what: &str| text.find(what).unwrap_or_else(|| panic!("{what:?} not in:\n{text}"));
    assert!(at(table, "1 regression(s) against the baseline") < at(table, "┌"), "{table}");
    assert!(at(table, &format!("0001_slow: {message}")) < at(table, "┌"));
    let md = out.markdown();
    assert!(at(&md, &format!("`0001_slow`: {message}")) < at(&md, "## Migrations"), "{md}");
    assert!(at(&md, "gone since the baseline: `0000_gone`") < at(&md, "## Migrations"));
    assert!(md.contains("## Compared with the baseline"));
    let json = out.json_text();
    assert!(at(&json, "\"regressions\"") < at(&json, "\"migrations\": [\n    {\n      \"id\""), "baseline comes first");
    let cases = junit_cases(&out.junit());
    assert_eq!(cases[0].name, "run");
    assert!(cases[0].out.contains(message), "{}", cases[0].out);
    let slow = cases.iter().find(|c| c.name == "0001_slow").unwrap();
    assert_eq!(slow.failure.as_ref().map(|f| f.0.as_str()), Some("regression"));

    // report.baseline, the same numbers: no regression.
    let scenario = sandbox.scenario(&dump, &format!("report:\n  baseline: {}\n", same.display()));
    let out = sandbox.rehearse(&[&["run", scenario.to_str().unwrap()][..], &formats].concat());
    out.assert_code(0);
    let b = out.report().baseline.unwrap();
    assert!(b.regressions.is_empty(), "{:?}", b.regressions);
    assert_eq!(b.migrations.len(), 2);
    assert!(b.new.is_empty() && b.vanished.is_empty());
    assert!(out.stdout.contains("0 regression(s) against the baseline"));
    assert!(out.markdown().contains("**0 regression(s) against the baseline"));
    sandbox.assert_no_leaks();
}

fn bad_baseline(content: Option<&str>, expected: &[&str]) {
    let sandbox = Sandbox::new();
    sandbox.migrations(&MIGRATIONS);
    let path = sandbox.path().join("previous.json");
    if let Some(text) = content {
        std::fs::write(&path, text).unwrap();
    }
    let scenario = sandbox.scenario(&dumps().path("custom"), "report:\n  baseline: previous.json\n");
    let expected: Vec<&str> = expected.iter().copied().chain([path.to_str().unwrap()]).collect();
    sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &expected).assert_nothing_ran();
}

#[test]
fn a_missing_baseline_is_bad_input() {
    bad_baseline(None, &["cannot read baseline", "leave the baseline out for the first night"]);
}

#[test]
fn a_baseline_that_is_not_a_rehearse_report_is_bad_input() {
    bad_baseline(Some(r#"{"tests": 3}"#), &["is not a rehearse report", "missing", "rehearse.report/v1"]);
    bad_baseline(Some("<testsuites/>"), &["is not JSON"]);
}
