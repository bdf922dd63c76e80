//! Budgets gate the run: each kind breached by a migration built for it and
//! named, with its figure and budget, in every format; overrides accept a
//! maintenance-window migration; `max_runtime` cancels a migration that runs
//! past it.

use rehearse::report::{MigrationStatus, RunStatus};

use crate::support::{dumps, junit_cases, RunOutput, Sandbox};

/// Each migration breaks exactly one budget of `BUDGETS`: reads block only
/// under AccessExclusiveLock (which blocks writes too, hence the write
/// budget above the read hold), probes watch only `orders`.
const MIGRATIONS: [(&str, &str); 5] = [
    ("0001_runtime.sql", "SELECT pg_sleep(1.8);\n"),
    ("0002_read_block.sql", "LOCK TABLE public.customers IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(0.3);\n"),
    ("0003_write_block.sql", "LOCK TABLE public.customers IN SHARE MODE;\nSELECT pg_sleep(0.9);\n"),
    ("0004_probe_wait.sql", "LOCK TABLE public.orders IN SHARE MODE;\nSELECT pg_sleep(0.3);\n"),
    ("0005_wal.sql", "UPDATE public.orders SET total = total + 1;\n"),
];

const BUDGETS: &str = "observe:
  hot_tables: [public.orders]
budgets:
  migration:
    max_runtime: 1500ms
    on_exceed: continue
    max_exclusive_lock: 150ms
    max_write_block: 700ms
    max_probe_wait: 150ms
    max_wal: 512kB
";

const EXPECTED: [(&str, &str); 5] = [
    ("0001_runtime", "max_runtime"),
    ("0002_read_block", "max_exclusive_lock"),
    ("0003_write_block", "max_write_block"),
    ("0004_probe_wait", "max_probe_wait"),
    ("0005_wal", "max_wal"),
];

fn rehearse_budget_migrations(sandbox: &Sandbox, extra: &str) -> RunOutput {
    sandbox.migrations(&MIGRATIONS);
    let scenario = sandbox.scenario(&dumps().path("custom"), &format!("{BUDGETS}{extra}"));
    sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--format", "table,markdown,json,junit"])
}

#[test]
fn each_budget_kind_is_breached_and_named_in_every_format() {
    let sandbox = Sandbox::new();
    let out = rehearse_budget_migrations(&sandbox, "");
    out.assert_code(1);
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    let (md, xml) = (out.markdown(), out.junit());
    let cases = junit_cases(&xml);
    for (m, (id, budget)) in report.migrations.iter().zip(EXPECTED) {
        assert_eq!(m.id, id);
        assert_eq!(m.status, MigrationStatus::Applied, "{id}: on_exceed: continue lets it finish");
        let kinds: Vec<&str> = m.breaches.iter().map(|b| b.budget.as_str()).collect();
        assert_eq!(kinds, [budget], "{id}: {:?}", m.budget_breaches);
        let breach = &m.breaches[0];
        assert!(breach.figure > breach.limit, "{breach:?}");
        let message = &m.budget_breaches[0];
        assert_eq!(message, &breach.message);
        assert!(message.starts_with(&format!("{budget}: ")) && message.contains(", budget "), "{message}");
        assert!(out.stdout.contains(&format!("over budget: {id}: {message}")), "table:\n{}", out.stdout);
        assert!(md.contains(&format!("`{id}`: {message}")), "markdown summary lacks {message}");
        assert!(md.contains(&format!("- **Over budget:** {message}")), "markdown section lacks {message}");
        let case = cases.iter().find(|c| c.name == id).unwrap();
        let (kind, junit_message, body) = case.failure.as_ref().unwrap_or_else(|| panic!("{id} passed in junit"));
        assert_eq!((kind.as_str(), junit_message), ("budget_exceeded", message));
        assert!(body.contains(message));
    }
    let wal = &report.migrations[4].breaches[0];
    assert_eq!((wal.unit.as_str(), wal.limit), ("bytes", 512 * 1024));
    let probe = &report.migrations[3].breaches[0];
    assert_eq!(probe.relation.as_deref(), Some("public.orders"));
    assert!(report.migrations[3].budget_breaches[0].contains("a write on public.orders waited"));
    assert!(md.starts_with("# Migration rehearsal: test\n\n**BUDGET EXCEEDED: 5 applied"), "{md}");
    sandbox.assert_no_leaks();
}

#[test]
fn overrides_accept_each_migration_as_a_maintenance_window_job() {
    let sandbox = Sandbox::new();
    let out = rehearse_budget_migrations(
        &sandbox,
        "  overrides:
    0001_runtime: {max_runtime: 1m}
    0002_read_block: {max_exclusive_lock: 1m}
    0003_write_block: {max_write_block: 1m}
    0004_probe_wait: {max_probe_wait: 1m}
    0005_wal: {max_wal: 1GB}
    0099_not_pending: {max_runtime: 1h}
",
    );
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Passed);
    assert!(report.migrations.iter().all(|m| m.breaches.is_empty()), "{:?}", report.migrations[0].budget_breaches);
    assert_eq!(report.budgets.overrides["0001_runtime"].max_runtime_ms, Some(60_000));
    assert_eq!(report.budgets.overrides["0001_runtime"].max_wal_bytes, Some(512 * 1024), "the rest is inherited");
    assert_eq!(report.budgets.unused_overrides, ["0099_not_pending"]);
    // A mistyped override is said where people read, not only in the JSON.
    let unused = "0099_not_pending is not a rehearsed migration (a mistyped id, or one production has applied since)";
    assert!(out.stdout.contains(&format!("note: budgets.overrides: {unused}")), "{}", out.stdout);
    let md_unused = "**Note:** `budgets.overrides`: `0099_not_pending` is not a rehearsed migration";
    assert!(out.markdown().contains(md_unused), "{}", out.markdown());
    assert_eq!(out.markdown().matches("Within its own budget (`budgets.overrides`").count(), 5);
    assert!(junit_cases(&out.junit()).iter().all(|c| c.failure.is_none()));
}

#[test]
fn a_migration_past_max_runtime_is_cancelled_and_the_rest_skipped() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_quick.sql", "CREATE TABLE public.quick (id int);\n"),
        ("0002_sleeps.sql", "CREATE TABLE public.half (id int);\nSELECT pg_sleep(30);\n"),
        ("0003_never.sql", "CREATE TABLE public.never (id int);\n"),
    ]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "budgets:\n  migration:\n    max_runtime: 1s\n");
    let started = std::time::Instant::now();
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--format", "table,markdown,json,junit"]);
    // Had the backend not been cancelled, the rollback would have waited out
    // the 30s sleep before cleanup.
    assert!(started.elapsed().as_secs() < 25, "took {:?}", started.elapsed());
    out.assert_code(1);
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded, "a timeout is a budget breach");
    let statuses: Vec<_> = report.migrations.iter().map(|m| m.status).collect();
    assert_eq!(statuses, [MigrationStatus::Applied, MigrationStatus::TimedOut, MigrationStatus::Skipped]);
    assert_eq!(report.totals.timed_out, 1);
    let m = &report.migrations[1];
    assert!((1000..2000).contains(&m.duration_ms), "cancelled {}ms into a 1s budget", m.duration_ms);
    assert_eq!(m.breaches[0].budget.as_str(), "max_runtime");
    assert!(m.budget_breaches[0].starts_with("max_runtime: cancelled after 1."), "{}", m.budget_breaches[0]);
    assert!(m.budget_breaches[0].ends_with("budget 1.0s (on_exceed: cancel)"), "{}", m.budget_breaches[0]);
    let error = m.error.as_ref().unwrap();
    assert!(error.message.contains("ran past its max_runtime budget of 1.0s"), "{}", error.message);
    assert_eq!((error.statement.as_deref(), error.line), (Some("SELECT pg_sleep(30)"), Some(2)));
    assert!(out.stdout.contains("timed_out (over budget)"), "{}", out.stdout);
    assert!(out.markdown().contains("### `0002_sleeps`: timed_out"));
    let cases = junit_cases(&out.junit());
    let case = |id: &str| cases.iter().find(|c| c.name == id).unwrap();
    assert_eq!(case("0002_sleeps").failure.as_ref().unwrap().0, "timed_out");
    assert!(case("0003_never").skipped && case("0003_never").failure.is_none());
    sandbox.assert_no_leaks();
}
