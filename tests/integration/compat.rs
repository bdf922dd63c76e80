//! Compatibility with the running app version, on real servers: a corpus
//! of the app's queries is checked before the first migration and after
//! each one, and exactly the queries a migration breaks are blamed on it
//! (a renamed column, an INSERT that leaves out a new NOT NULL column
//! without a default); a query broken from the start is "already broken",
//! unaffected ones are not reported, utility statements are counted. Under
//! `fail_on_incompatible` an incompatibility is a breach (exit 1); after a
//! migration that failed nothing is checked. The check's own session shows
//! in no migration's locks or statements. The demo's corpus is broken by
//! its 0007 alone.

use rehearse::report::{BrokenQuery, BudgetKey, ChecklistId, MigrationStatus, Report, RunStatus, Unit};

use crate::support::{junit_cases, tiny_demo_dump, RunOutput, Sandbox, DEMO_PENDING, REPO};

/// On the demo schema (tiny_demo_dump): 0003 renames users.full_name,
/// 0004 adds orders.region NOT NULL and drops its default (the usual
/// add-backfill-tighten), 0005 changes nothing the app uses.
const MIGRATIONS: [(&str, &str); 3] = [
    ("0003_rename_full_name.sql", "ALTER TABLE public.users RENAME COLUMN full_name TO display_name;\n"),
    (
        "0004_add_orders_region.sql",
        "ALTER TABLE public.orders ADD COLUMN region text NOT NULL DEFAULT 'eu';\n\
         ALTER TABLE public.orders ALTER COLUMN region DROP DEFAULT;\n",
    ),
    ("0005_index_coupons.sql", "CREATE INDEX coupons_valid_until_idx ON public.coupons (valid_until);\n"),
];

const RENAMED: &str = "SELECT id, full_name FROM users WHERE id = $1";
const OMITS_REGION: &str = "INSERT INTO orders (user_id, total_cents) VALUES ($1, $2)";
const NEVER_WORKED: &str = "SELECT nickname FROM users WHERE id = $1";
const UNAFFECTED: [&str; 4] = [
    "SELECT id, email FROM users WHERE email = $1",
    "INSERT INTO events (user_id, kind, payload) VALUES ($1, $2, $3)",
    "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1",
    // No column list: id, code and percent_off; the rest are nullable.
    "INSERT INTO coupons VALUES (DEFAULT, $1, $2)",
];

/// The corpus: every query above, and two utility statements.
fn corpus() -> String {
    let mut sql = String::from("-- the app\nSET statement_timeout = '5s';\n");
    for q in [RENAMED, OMITS_REGION, NEVER_WORKED].iter().chain(UNAFFECTED.iter()) {
        sql.push_str(&format!("{q};\n"));
    }
    sql.push_str("BEGIN;\n");
    sql
}

/// Rehearses `migrations` on the tiny demo with the corpus as compat.queries, plus `extra` YAML.
fn rehearse_with_corpus(sandbox: &Sandbox, migrations: &[(&str, &str)], extra: &str) -> RunOutput {
    sandbox.migrations(migrations);
    sandbox.write("queries.sql", &corpus());
    let scenario = sandbox.scenario(tiny_demo_dump(), &format!("compat:\n  queries: queries.sql\n{extra}"));
    sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--format", "table,markdown,json,junit"])
}

fn broken(report: &Report, index: usize) -> &[BrokenQuery] {
    &report.migrations[index].compat.as_ref().unwrap_or_else(|| panic!("migration {index} was checked")).broken
}

#[test]
fn each_incompatibility_is_blamed_on_the_migration_that_made_it() {
    let sandbox = Sandbox::new();
    let out = rehearse_with_corpus(&sandbox, &MIGRATIONS, "");
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Passed, "an incompatibility is reported, not a breach, by default");

    let info = report.compat.as_ref().expect("the corpus was checked");
    assert!(info.queries.ends_with("queries.sql"), "{}", info.queries);
    assert_eq!((info.checked, info.ignored_utility, info.ignored_unparsable), (7, 2, 0));
    let already: Vec<(&str, &str)> = info.already_broken.iter().map(|b| (b.query.as_str(), b.code.as_str())).collect();
    assert_eq!(already, [(NEVER_WORKED, "42703")], "broken before the first migration");

    let renamed = broken(&report, 0);
    assert_eq!(renamed.len(), 1, "{renamed:?}");
    assert_eq!((renamed[0].query.as_str(), renamed[0].code.as_str()), (RENAMED, "42703"));
    assert_eq!(renamed[0].message, "column \"full_name\" does not exist");
    assert_eq!(renamed[0].calls, None, "a .sql corpus has no call counts");

    let region = broken(&report, 1);
    assert_eq!(region.len(), 1, "{region:?}");
    assert_eq!((region[0].query.as_str(), region[0].code.as_str()), (OMITS_REGION, "23502"));
    assert!(
        region[0]
            .message
            .starts_with("null value in column \"region\" of relation \"orders\" violates not-null constraint"),
        "{}",
        region[0].message
    );
    assert!(broken(&report, 2).is_empty(), "0005 breaks nothing, and the queries 0003 broke stay blamed on 0003");
    for m in &report.migrations {
        assert_eq!(m.compat.as_ref().map(|c| c.checked), Some(7), "{}", m.id);
        // The checks run between observations: their sessions' locks and statements are no migration's.
        assert!(!m.locks.iter().any(|l| l.relation == "public.events"), "{}: {:?}", m.id, m.locks);
        let corpus_texts = ["nickname", "full_name FROM", "$3"];
        let seen: Vec<&str> = m.top_statements.iter().map(|s| s.query.as_str()).collect();
        assert!(!seen.iter().any(|q| corpus_texts.iter().any(|t| q.contains(t))), "{}: {seen:?}", m.id);
    }

    let item = report.checklist.items.iter().find(|i| i.id == ChecklistId::AppCompatibility).unwrap();
    assert!(!item.done, "something broke: {item:?}");
    let todo = item.todo.as_deref().unwrap();
    assert!(
        todo.contains("`0003_rename_full_name` breaks") && todo.contains("`0004_add_orders_region` breaks"),
        "{todo}"
    );
    assert!(item
        .evidence
        .iter()
        .any(|e| e.contains("Checked 7 queries") && e.contains("2 utility statements ignored")));
    assert!(
        item.evidence.iter().any(|e| e.contains("Already failing") && e.contains("nickname")),
        "{:?}",
        item.evidence
    );

    let md = out.markdown();
    for text in ["## Compatibility with the running app", "**Breaks queries of the running app** (1 of 7 checked)"] {
        assert!(md.contains(text), "{text} in report.md:\n{md}");
    }
    assert!(md.contains("Already failing before the first migration") && md.contains("`42703` column \"nickname\""));
    assert!(out.stdout.contains("breaks 2 queries of the running app"), "the verdict line says it:\n{}", out.stdout);
    let cases = junit_cases(&out.junit());
    let case = cases.iter().find(|c| c.name == "0003_rename_full_name").unwrap();
    assert!(case.failure.is_none() && case.out.contains("breaks a query of the running app: SELECT id, full_name"));
}

#[test]
fn fail_on_incompatible_makes_an_incompatibility_a_breach_naming_the_migration() {
    let sandbox = Sandbox::new();
    let out = rehearse_with_corpus(&sandbox, &MIGRATIONS[..1], "budgets:\n  fail_on_incompatible: true\n");
    out.assert_code(1);
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    assert!(report.budgets.fail_on_incompatible);
    let breaches = &report.migrations[0].breaches;
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    assert_eq!(
        (breaches[0].budget, breaches[0].unit, breaches[0].figure),
        (BudgetKey::FailOnIncompatible, Unit::Queries, 1)
    );
    assert!(
        out.stderr.contains(
            "budget exceeded: 0003_rename_full_name: fail_on_incompatible: breaks 1 query of the running app"
        ),
        "{}",
        out.stderr
    );
    let cases = junit_cases(&out.junit());
    let case = cases.iter().find(|c| c.name == "0003_rename_full_name").unwrap();
    let (kind, message, _) = case.failure.as_ref().expect("a breach fails the case");
    assert_eq!(kind, "budget_exceeded");
    assert!(message.contains("42703 column \"full_name\" does not exist"), "{message}");
}

#[test]
fn nothing_is_checked_after_a_migration_that_failed() {
    let sandbox = Sandbox::new();
    let failing =
        [("0003_fails.sql", "ALTER TABLE public.users RENAME COLUMN full_name TO display_name;\nSELECT 1/0;\n")];
    let out = rehearse_with_corpus(&sandbox, &failing, "");
    out.assert_code(2);
    let report = out.report();
    assert_eq!(report.migrations[0].status, MigrationStatus::Failed);
    assert_eq!(report.migrations[0].compat, None, "it rolled back: the schema is the one checked before it");
    assert_eq!(report.compat.as_ref().map(|c| c.already_broken.len()), Some(1));
    let item = report.checklist.items.iter().find(|i| i.id == ChecklistId::AppCompatibility).unwrap();
    assert!(!item.done && item.todo.as_deref().unwrap().contains("not checked against every migration"), "{item:?}");
}

/// The demo's corpus (scenarios/demo/queries.sql) against the demo's
/// pending migrations, on the tiny demo: 0007's widening to bigint breaks
/// exactly the packing slip's `repeat(text, integer)`; 0006's NOT NULL
/// column has a default, so checkout's INSERT still works.
#[test]
fn the_demo_corpus_is_broken_by_0007_only() {
    let sandbox = Sandbox::new();
    let dir = std::path::Path::new(REPO).join("scenarios/demo/migrations");
    let pending: Vec<(String, String)> = DEMO_PENDING
        .iter()
        .map(|id| (format!("{id}.sql"), std::fs::read_to_string(dir.join(format!("{id}.sql"))).unwrap()))
        .collect();
    sandbox.migrations(&pending.iter().map(|(f, sql)| (f.as_str(), sql.as_str())).collect::<Vec<_>>());
    let corpus = format!("{REPO}/scenarios/demo/queries.sql");
    let scenario = sandbox.scenario(tiny_demo_dump(), &format!("compat:\n  queries: {corpus}\n"));
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--format", "json"]);
    out.assert_code(0);
    let report = out.report();
    let info = report.compat.as_ref().unwrap();
    assert_eq!((info.checked, info.ignored_utility, info.already_broken.len()), (12, 1, 0), "{info:?}");
    let blamed: Vec<(&str, &str)> = report
        .migrations
        .iter()
        .flat_map(|m| m.compat.iter().flat_map(|c| &c.broken).map(move |b| (m.id.as_str(), b.code.as_str())))
        .collect();
    assert_eq!(blamed, [("0007_widen_order_items_quantity", "42883")]);
    let broken = &broken(&report, 4)[0];
    assert!(broken.query.contains("repeat('[ ] ', i.quantity)"), "{}", broken.query);
    assert_eq!(broken.message, "function repeat(unknown, bigint) does not exist");
}

/// Seconds of CPU process `pid` has used (utime + stime of /proc/PID/stat).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().ok()? + fields[12].parse::<f64>().ok()?;
    Some(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

/// A signal while a big corpus is read stops the read: exit 130. Right
/// after the corpus the scenario is refused (race.replicas: 1, exit 3), so a
/// read that went on to the end despite the signal ends with 3 instead. The
/// signal goes once the run has used 0.3 s of CPU, well into a read of
/// about 30 MB (seconds of CPU), whatever the machine's load.
#[test]
fn a_signal_while_a_big_corpus_is_read_stops_it_with_exit_130() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;\n")]);
    let statement = "SELECT a, b FROM public.orders WHERE id = $1 AND note = 'x;y';\n";
    sandbox.write("queries.sql", &statement.repeat(30_000_000 / statement.len()));
    let extra = "compat:\n  queries: queries.sql\nrace: { replicas: 1, command: ./up.sh }\n";
    let scenario = sandbox.scenario(tiny_demo_dump(), extra);
    let mut child = sandbox.spawn(&["run", scenario.to_str().unwrap()]);
    let pid = child.id();
    while cpu_seconds(pid).is_some_and(|cpu| cpu < 0.3) && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(child.try_wait().unwrap().is_none(), "the run ended before it was signalled: make the corpus bigger");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    sandbox.assert_no_leaks();
}
