//! The CI and release-ticket formats of a real rehearsal: JUnit XML with one
//! case per migration, and the Markdown production checklist with evidence.

use rehearse::report::{DestructiveKind, MigrationStatus};

use crate::support::{dumps, junit_cases, Sandbox};

#[test]
fn junit_has_one_case_per_migration_with_the_right_failures() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_fine.sql", "CREATE TABLE public.fine (id int);\n"),
        ("0002_heavy.sql", "UPDATE public.orders SET total = total + 1;\n"),
        ("0003_broken.sql", "-- <oops> & \"quotes\"\nSELECT 1/0;\n"),
        ("0004_after.sql", "SELECT 1;\n"),
    ]);
    let scenario = sandbox.scenario(
        &dumps().path("custom"),
        "budgets:\n  migration:\n    max_wal: 512kB\nreport:\n  formats: [table, markdown, junit, json]\n",
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(2);
    let xml = out.junit();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc.descendants().find(|n| n.attribute("name") == Some("test: migrations")).unwrap();
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("failures"), suite.attribute("skipped")),
        (Some("4"), Some("2"), Some("1"))
    );
    let cases: Vec<_> = junit_cases(&xml).into_iter().filter(|c| c.suite == "test: migrations").collect();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["0001_fine", "0002_heavy", "0003_broken", "0004_after"]);
    assert!(cases[0].failure.is_none() && !cases[0].skipped);
    assert!(cases[0].out.starts_with("applied: time "), "{}", cases[0].out);
    let (kind, message, body) = cases[1].failure.clone().unwrap();
    assert_eq!(kind, "budget_exceeded");
    assert!(message.starts_with("max_wal: wrote ") && message.ends_with(", budget 512.0 kB"), "{message}");
    assert!(body.contains("time ") && body.contains("WAL "), "the figures: {body}");
    let (kind, message, body) = cases[2].failure.clone().unwrap();
    assert_eq!(kind, "migration_failed");
    assert!(message.contains("division by zero"), "{message}");
    assert!(body.contains("0003_broken.sql line 2") && body.contains("statement: SELECT 1/0"), "{body}");
    assert!(cases[3].skipped && cases[3].failure.is_none());
    let report = out.report();
    assert_eq!(report.migrations[3].status, MigrationStatus::Skipped);

    // The run case fails too, naming the migration that failed.
    let run = junit_cases(&xml).into_iter().find(|c| c.name == "run").unwrap();
    let (kind, message, _) = run.failure.expect("a failed migration fails the run case");
    assert_eq!(kind, "migration_failed");
    assert_eq!(message, "migration 0003_broken failed: ERROR: division by zero");
    // A skipped migration did not run: no time anywhere, not "0ms".
    let skipped = doc.descendants().find(|n| n.attribute("name") == Some("0004_after")).unwrap();
    assert_eq!(skipped.attribute("time"), None, "a skipped case has no time");
    assert_eq!(cases[3].out, "skipped: not run");
    let row = out.stdout.lines().find(|l| l.contains("0004_after")).expect("a table row for 0004_after");
    assert!(row.contains("skipped") && !row.contains("ms"), "{row}");
    let md = out.markdown();
    let skipped_row = md.lines().find(|l| l.starts_with("| 4 | `0004_after`")).expect("a Markdown row for 0004_after");
    assert!(skipped_row.ends_with("| skipped | - | - |"), "{skipped_row}");
    // The Markdown names the failed migration first, before the riskiest one.
    let at = |what: &str| md.find(what).unwrap_or_else(|| panic!("{what:?} not in:\n{md}"));
    assert!(at("**Failed migration:** `0003_broken`: ERROR: division by zero") < at("**Riskiest migration:**"));
    sandbox.assert_no_leaks();
}

const TITLES: [&str; 11] = [
    "Tested in staging with prod-shaped data",
    "Estimated runtime documented",
    "Backup available",
    "Replica lag plan",
    "Comm to ops if long",
    "Low-traffic window or normal hours",
    "Runs as a standalone job, not multi-replica app start-up",
    "Rollback strategy (forward)",
    "Have abort plan",
    "Compatible with the running app version (expand-contract)",
    "Monitoring active",
];

#[test]
fn the_markdown_fills_every_checklist_item_with_the_evidence_it_has() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n"),
        (
            "0002_contract.sql",
            "ALTER TABLE public.orders DROP COLUMN note;\nALTER TABLE public.customers RENAME COLUMN name TO full_name;\n",
        ),
        ("0003_slow.sql", "SELECT pg_sleep(1.2);\n"),
    ]);
    let summary = sandbox.write("step-summary.md", "earlier step\n");
    let scenario = sandbox.scenario(
        &dumps().path("custom"),
        "report:\n  measure_backup: true\n  deploy_window: 1s\n  ops_threshold: 1m\n  replica_apply_rate: 10MB/s\n",
    );
    let out = sandbox
        .rehearse_env(&["run", scenario.to_str().unwrap()], &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())]);
    out.assert_code(0);
    let report = out.report();
    let md = out.markdown();
    let start = md.find("## Production checklist").expect("a checklist section");
    let checklist = &md[start..start + md[start..].find("\n## Dump").unwrap()];
    let items: Vec<&str> = checklist.split("\n- [").skip(1).collect();
    let item = |title: &str| {
        let found = items.iter().find(|i| i.contains(&format!("] **{title}**")));
        format!("- [{}", found.unwrap_or_else(|| panic!("no item {title:?}:\n{checklist}")))
    };
    // Every item is rendered once, as a checkbox, in the checklist's order.
    let rendered: Vec<&str> = items.iter().filter_map(|i| i.split("**").nth(1)).collect();
    assert_eq!(rendered, TITLES, "{checklist}");
    assert!(items.iter().all(|i| i.starts_with("x] ") || i.starts_with(" ] ")), "{checklist}");
    let ids: Vec<String> =
        report.checklist.items.iter().map(|i| serde_json::to_value(i.id).unwrap().to_string()).collect();
    assert_eq!(
        ids,
        [
            "prod_shaped_data",
            "runtime_estimate",
            "backup",
            "replica_lag",
            "ops_comm",
            "traffic_window",
            "standalone_job",
            "rollback",
            "abort_plan",
            "app_compatibility",
            "monitoring"
        ]
        .map(|id| format!("\"{id}\""))
    );

    let data = item(TITLES[0]);
    assert!(data.starts_with("- [x]"), "{data}");
    let sha = report.dump.sha256.as_deref().unwrap();
    for evidence in ["`source.custom`", sha, "restored at 20", &format!("public.orders {} rows", dumps().orders)] {
        assert!(data.contains(evidence), "{evidence:?} not in {data}");
    }
    let runtime = item(TITLES[1]);
    assert!(
        runtime.starts_with("- [x]") && runtime.contains("longest `0003_slow` 1.") && runtime.contains("PostgreSQL 1")
    );
    assert!(runtime.contains("Production hardware"), "the caveat: {runtime}");
    let backup = item(TITLES[2]);
    let b = report.backup.as_ref().unwrap();
    assert!(b.bytes.unwrap() > 0 && b.error.is_none(), "{b:?}");
    assert!(
        backup.starts_with("- [ ]")
            && backup.contains("`pg_dump -Fc` of the rehearsal database")
            && backup.contains("**To do:**")
    );
    let lag = item(TITLES[3]);
    assert!(lag.contains("at 10.0 MB/s replay") && lag.contains("How it is estimated"), "{lag}");
    assert!(md.contains("### Runtime and replica lag estimate") && md.contains("| Replay at 10.0 MB/s |"));
    assert!(item(TITLES[4]).starts_with("- [x]"), "1m ops threshold: {}", item(TITLES[4]));
    let traffic = item("Low-traffic window or normal hours");
    assert!(traffic.starts_with("- [ ]") && traffic.contains("Not rehearsed under the app's traffic"), "{traffic}");
    let standalone = item("Runs as a standalone job, not multi-replica app start-up");
    assert!(
        standalone.starts_with("- [ ]") && standalone.contains("Run `0003_slow` (1."),
        "1s deploy window: {standalone}"
    );
    for title in ["Rollback strategy (forward)", "Compatible with the running app version (expand-contract)"] {
        let text = item(title);
        assert!(text.starts_with("- [ ]") && text.contains("**To do:**"), "{text}");
        assert!(text.contains("drop_column public.orders.note (`0002_contract`, line 1)"), "{text}");
        assert!(text.contains("rename_column public.customers.name → full_name (`0002_contract`, line 2)"), "{text}");
    }
    assert!(item("Monitoring active").starts_with("- [ ]"));
    let abort = item("Have abort plan");
    assert!(abort.starts_with("- [ ]") && abort.contains("Not rehearsed"), "{abort}");
    let kinds: Vec<DestructiveKind> = report.migrations[1].destructive_changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [DestructiveKind::DropColumn, DestructiveKind::RenameColumn]);
    assert!(report.migrations[0].destructive_changes.is_empty(), "adding a column is not destructive");

    let step = std::fs::read_to_string(&summary).unwrap();
    assert!(step.starts_with("earlier step\n# Migration rehearsal: test"), "appended: {}", &step[..80.min(step.len())]);
    assert!(out.stderr.contains(&format!("wrote {}", summary.display())));
    sandbox.assert_no_leaks();
}

#[test]
fn the_step_summary_gets_report_md_as_written() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n")]);
    let summary = sandbox.write("step-summary.md", "earlier step\n");
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox
        .rehearse_env(&["run", scenario.to_str().unwrap()], &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())]);
    out.assert_code(0);
    // The Markdown rendered once: the report stage's time in it is the same in both.
    let md = out.markdown();
    assert!(md.contains(" · report "), "the stage times, the report's included:\n{md}");
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), format!("earlier step\n{md}\n"));
    sandbox.assert_no_leaks();
}
