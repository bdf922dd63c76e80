//! The snapshot cache: a hit on the same dump, a miss when the dump changes,
//! a damaged entry rebuilt, prune removing what it says, and a warm run
//! reporting what a cold run reports.

use rehearse::report::MigrationReport;

use crate::support::{dumps, Sandbox};

fn comparable(m: &MigrationReport) -> (String, String, Vec<(String, String)>, usize) {
    let mut locks: Vec<(String, String)> = m.locks.iter().map(|l| (l.relation.clone(), l.mode.clone())).collect();
    locks.sort();
    (m.id.clone(), format!("{:?}", m.status), locks, m.rewrites.len())
}

#[test]
fn warm_runs_hit_the_cache_and_report_what_cold_runs_report() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_index.sql", "CREATE INDEX orders_total_idx ON public.orders (total);\n"),
        ("0002_retype.sql", "ALTER TABLE public.customers ALTER COLUMN name TYPE varchar(200);\n"),
    ]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let run = || sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);

    let cold = run();
    cold.assert_code(0);
    let cold = cold.report();
    assert_eq!(cold.restore.cache.as_deref(), Some("saved"));
    let warm = run();
    warm.assert_code(0);
    let warm = warm.report();
    assert_eq!(warm.restore.cache.as_deref(), Some("hit"), "same dump, same server: a hit");
    assert_eq!(warm.restore.cache_key, cold.restore.cache_key);
    assert_eq!(warm.restore.roles_created, cold.restore.roles_created);
    let cold_view: Vec<_> = cold.migrations.iter().map(comparable).collect();
    let warm_view: Vec<_> = warm.migrations.iter().map(comparable).collect();
    assert_eq!(warm_view, cold_view, "a warm run sees the same migrations, locks and rewrites");
    assert_eq!(warm.dump.tables.len(), cold.dump.tables.len());
    // The cached cluster's password was replaced: the manifest's no longer works,
    // and never appears in the outputs.
    sandbox.assert_no_leaks();

    // A different dump (the same data as a directory dump) is another key.
    let other = sandbox.scenario(&dumps().path("directory"), "");
    let out = sandbox.rehearse(&["run", other.to_str().unwrap(), "--use-cache"]);
    out.assert_code(0);
    assert_eq!(out.report().restore.cache.as_deref(), Some("saved"), "a changed dump never reuses an entry");
    assert_ne!(out.report().restore.cache_key, cold.restore.cache_key);

    // A truncated file in the entry is detected: rebuilt, not used.
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let run = || sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);
    let entry = sandbox.path().join("cache").join(cold.restore.cache_key.as_ref().unwrap());
    let victim = std::fs::read_dir(entry.join("data/global"))
        .unwrap()
        .flatten()
        .find(|e| e.metadata().unwrap().len() > 8192)
        .unwrap()
        .path();
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&victim).unwrap().set_len(len / 2).unwrap();
    let rebuilt = run();
    rebuilt.assert_code(0);
    assert_eq!(rebuilt.report().restore.cache.as_deref(), Some("saved"), "the damaged entry was rebuilt");

    // list shows both entries; prune removes what it says.
    let list = sandbox.rehearse(&["cache", "list"]);
    list.assert_code(0);
    assert!(list.stdout.contains("(2 entries)"), "{}", list.stdout);
    let pruned = sandbox.rehearse(&["cache", "prune", "--max-size", "0"]);
    pruned.assert_code(0);
    assert!(pruned.stdout.contains("2 entries removed"), "{}", pruned.stdout);
    let list = sandbox.rehearse(&["cache", "list"]);
    assert!(list.stdout.contains("(0 entries)"), "{}", list.stdout);
    sandbox.assert_no_leaks();
}
