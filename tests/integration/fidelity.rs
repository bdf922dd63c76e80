//! Lock fidelity where it is hardest: statements that cannot run in a
//! transaction block release their locks as they end, and on a small table
//! they end in milliseconds. They must never come back with no locks.

use rehearse::pg::LockMode;
use rehearse::report::{LockSource, MigrationStatus};

use crate::support::{dumps, Sandbox};

/// CREATE INDEX CONCURRENTLY on 3,000 rows (about 10 ms) and VACUUM FULL of
/// that table, three times each: every one reports the mode the manual
/// documents for it, seen by the watcher (or, when no reading could catch
/// it, inferred and said so); no hold is longer than its migration.
#[test]
fn fast_statements_outside_a_transaction_report_their_locks_every_time() {
    let sandbox = Sandbox::new();
    let mut files = Vec::new();
    for round in 1..=3 {
        files.push((
            format!("{:04}_index_customers_{round}.sql", round * 2 - 1),
            format!("CREATE INDEX CONCURRENTLY customers_name_{round} ON public.customers (name);\n"),
        ));
        files.push((
            format!("{:04}_vacuum_full_customers_{round}.sql", round * 2),
            "VACUUM FULL public.customers;\n".into(),
        ));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    sandbox.migrations(&refs);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.migrations.len(), 6);
    for m in &report.migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}", m.id);
        let expected =
            if m.id.contains("vacuum") { LockMode::AccessExclusiveLock } else { LockMode::ShareUpdateExclusiveLock };
        let lock = m.locks.iter().find(|l| l.relation == "public.customers" && l.mode == expected);
        let lock = lock.unwrap_or_else(|| panic!("{} reports no {expected} on public.customers: {:?}", m.id, m.locks));
        assert!(
            lock.source.iter().any(|s| matches!(s, LockSource::Watched | LockSource::Inferred | LockSource::Sampled)),
            "{}: {:?}",
            m.id,
            lock.source
        );
        assert!(!m.statements[0].locks.is_empty(), "{}: the statement lists the locks it took", m.id);
        for l in &m.locks {
            assert!(
                l.held_ms <= m.duration_ms,
                "{}: {} held {} ms in a {} ms migration",
                m.id,
                l.relation,
                l.held_ms,
                m.duration_ms
            );
        }
    }
    // VACUUM FULL rewrites the table: its readers were blocked for the whole of it.
    let vacuum = &report.migrations[1];
    assert_eq!(vacuum.longest_read_block.as_ref().map(|b| b.relation.as_str()), Some("public.customers"));
    assert!(vacuum.rewrites.iter().any(|r| r.relation == "public.customers"));
    sandbox.assert_no_leaks();
}
