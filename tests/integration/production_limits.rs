//! The estimate against production's limits, recorded in its stats file:
//! a hash that outgrows production's work_mem × hash_mem_multiplier at its
//! size is flagged with the memory EXPLAIN ANALYZE showed on the copy
//! (checked against the test's own EXPLAIN ANALYZE of the same statement),
//! and a statement whose production-scale time reaches the migration role's
//! statement_timeout fails the run (mid over it) or warns (high only),
//! though it passed on the 20× smaller copy.

use rehearse::report::{BudgetKey, MemoryNode, MigrationReport, Report};

use crate::support::{dumps, restored_cluster, scale_stats, stats_of_dump, Sandbox};

/// Updates every order from an aggregate of all orders: a hashed aggregate
/// feeding a hash join, ~12,000 rows changed.
const BACKFILL: &str = "UPDATE public.orders o SET note = o.note FROM (SELECT customer_id, sum(total) AS spent \
                        FROM public.orders GROUP BY customer_id) s WHERE s.customer_id = o.customer_id AND s.spent >= 0";

/// Production: orders 20× the copy's, its migration role `migrator` with
/// these login settings (role level).
fn production(sandbox: &Sandbox, settings: &[(&str, &str)]) -> std::path::PathBuf {
    let stats = stats_of_dump(&dumps().path("custom"), &sandbox.path().join("stats.json"));
    scale_stats(&stats, &["public.orders"], 20);
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let settings: Vec<_> = settings
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value, "scope": "role"}))
        .collect();
    json["role"] = serde_json::json!({
        "name": "migrator", "superuser": false, "createrole": false, "createdb": false, "bypassrls": false,
        "replication": false, "inherit": true, "member_of": ["app"], "settings": settings
    });
    std::fs::write(&stats, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    stats
}

fn rehearse(sandbox: &Sandbox, code: i32) -> (Report, String) {
    sandbox.migrations(&[("0001_backfill_orders.sql", &format!("{BACKFILL};\n"))]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "estimate:\n  production: stats.json\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(code);
    sandbox.assert_no_leaks();
    (out.report(), out.markdown())
}

/// The hashed aggregate's peak memory, by the test's own EXPLAIN ANALYZE
/// of the backfill on a fresh restore of the same dump (rolled back).
fn hash_aggregate_kb_here() -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = restored_cluster(&dumps().path("custom"), "explain-check").await;
        let conn = cluster.conn().clone();
        let client = rehearse::sys::db::connect(&conn, &conn.dbname, "explain-check").await.unwrap();
        client.batch_execute("BEGIN").await.unwrap();
        let messages = client.simple_query(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {BACKFILL}")).await.unwrap();
        client.batch_execute("ROLLBACK").await.unwrap();
        cluster.stop().await.unwrap();
        let text = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        let plan: serde_json::Value = serde_json::from_str(&text.expect("a plan")).unwrap();
        fn find(node: &serde_json::Value) -> Option<u64> {
            if node["Node Type"] == "Aggregate" && node["Strategy"] == "Hashed" {
                return node["Peak Memory Usage"].as_u64();
            }
            node["Plans"].as_array()?.iter().find_map(find)
        }
        find(&plan[0]["Plan"]).expect("the plan has a hashed aggregate")
    })
}

fn backfill(report: &Report) -> &MigrationReport {
    &report.migrations[0]
}

#[test]
fn a_hash_over_production_work_mem_is_flagged_and_a_statement_over_its_statement_timeout_fails() {
    let sandbox = Sandbox::new();
    production(&sandbox, &[("statement_timeout", "500ms"), ("work_mem", "256kB")]);
    // Whether the mid or only the high end reaches 500 ms depends on this
    // machine's speed: both are checked, each with its exit code.
    sandbox.migrations(&[("0001_backfill_orders.sql", &format!("{BACKFILL};\n"))]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "estimate:\n  production: stats.json\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    let (report, md) = (out.report(), out.markdown());
    let m = backfill(&report);
    let e = m.estimate.as_ref().unwrap();

    // The memory: as the test's own EXPLAIN ANALYZE read it, grown 20×.
    let node = m.statements[0].memory.iter().find(|n| n.node == MemoryNode::HashAggregate).expect("memory read");
    let kb = hash_aggregate_kb_here();
    assert!(node.need_bytes.abs_diff(kb * 1024) <= kb * 1024 / 4, "{node:?} vs the test's {kb} kB");
    let spill = e.spills.iter().find(|s| s.node == MemoryNode::HashAggregate).expect("flagged: {e:?}");
    assert_eq!(spill.limit_bytes, 512 * 1024, "256kB × hash_mem_multiplier 2 (PostgreSQL's default): {spill:?}");
    assert!(spill.need_bytes.abs_diff(node.need_bytes * 20) <= 20 * 1024, "{spill:?} vs 20 × {node:?}");
    assert!(e.basis.iter().any(|b| b.contains("spills to disk")), "{:?}", e.basis);
    assert!(md.contains("Spills to disk in production"), "{md}");

    // The timeout: the role's, against the statement's estimate.
    let over = e.over_statement_timeout.first().unwrap_or_else(|| panic!("no finding: {e:?}"));
    assert_eq!((over.timeout_ms, over.timeout_from.as_str()), (500, "role migrator"));
    assert!(over.estimate_ms.high >= 500 && m.statements[0].duration_ms < 500, "{over:?} {m:?}");
    assert!(md.contains("Over production's statement_timeout 500ms (role migrator)"), "{md}");
    let breach = m.breaches.iter().find(|b| b.budget == BudgetKey::StatementTimeout);
    match over.fails {
        true => {
            out.assert_code(1);
            let b = breach.expect("mid over the timeout: a breach");
            assert_eq!((b.figure, b.limit), (over.estimate_ms.mid, 500));
            assert!(b.message.contains("SQLSTATE 57014"), "{}", b.message);
        }
        false => {
            out.assert_code(0);
            assert!(breach.is_none(), "only the high end over it: a warning, not a breach");
        }
    }
    sandbox.assert_no_leaks();
}

#[test]
fn under_a_longer_statement_timeout_and_a_larger_work_mem_nothing_is_flagged() {
    let sandbox = Sandbox::new();
    production(&sandbox, &[("statement_timeout", "1h"), ("work_mem", "1GB")]);
    let (report, md) = rehearse(&sandbox, 0);
    let e = backfill(&report).estimate.as_ref().unwrap();
    assert!(e.spills.is_empty() && e.over_statement_timeout.is_empty(), "{e:?}");
    assert!(!backfill(&report).statements[0].memory.is_empty(), "the memory is still read");
    assert!(!md.contains("Spills to disk") && !md.contains("statement_timeout"), "{md}");
}

/// Run under EXPLAIN ANALYZE, a data change that fails still fails as
/// itself: its SQLSTATE, and the line of the error in the file (the
/// position PostgreSQL gives counts the EXPLAIN it was sent under).
#[test]
fn a_failing_data_change_under_explain_is_reported_at_its_own_line() {
    let sandbox = Sandbox::new();
    production(&sandbox, &[("statement_timeout", "1h")]);
    sandbox.migrations(&[(
        "0001_bad_update.sql",
        "SELECT 1;\nUPDATE public.orders\n   SET no_such_column = 1\n WHERE id > 0\n   AND total >= 0;\n",
    )]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "estimate:\n  production: stats.json\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    let report = out.report();
    let error = backfill(&report).error.as_ref().expect("the migration failed");
    assert_eq!((error.sqlstate.as_deref(), error.line), (Some("42703"), Some(3)), "{error:?}");
    assert_eq!(
        error.statement.as_deref(),
        Some("UPDATE public.orders\n   SET no_such_column = 1\n WHERE id > 0\n   AND total >= 0"),
        "{error:?}"
    );
    sandbox.assert_no_leaks();
}

/// The size of `index` once the test itself builds it (`create`) on a fresh
/// restore of the same dump.
fn built_index_bytes(create: &str, index: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = restored_cluster(&dumps().path("custom"), "index-check").await;
        let conn = cluster.conn().clone();
        let client = rehearse::sys::db::connect(&conn, &conn.dbname, "index-check").await.unwrap();
        client.batch_execute(create).await.unwrap();
        let row = client.query_one("SELECT pg_relation_size($1::text::regclass)", &[&index]).await.unwrap();
        cluster.stop().await.unwrap();
        row.get(0)
    })
}

/// An index build whose sort outgrows production's maintenance_work_mem
/// (the role's 1MB) at 20× the copy's rows is flagged: one sort entry per
/// row, the index tuple the test's own build shows plus the sort's ~40
/// bytes; its high end widens, its mid does not.
#[test]
fn an_index_build_over_production_maintenance_work_mem_is_flagged() {
    let sandbox = Sandbox::new();
    production(&sandbox, &[("maintenance_work_mem", "1MB")]);
    let create = "CREATE INDEX orders_total_idx ON public.orders (total)";
    sandbox.migrations(&[("0001_index_orders_total.sql", &format!("{create};\n"))]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "estimate:\n  production: stats.json\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let e = backfill(&report).estimate.as_ref().unwrap();
    let spill = e.spills.iter().find(|s| s.node == MemoryNode::IndexBuild).unwrap_or_else(|| panic!("{e:?}"));
    let bytes = built_index_bytes(create, "public.orders_total_idx") as f64;
    let expected = 12_000.0 * 20.0 * (40.0 + (bytes / 12_000.0).max(16.0));
    assert!((spill.need_bytes as f64 - expected).abs() <= expected * 0.05, "{spill:?} vs {expected} ({bytes} B here)");
    assert_eq!((spill.limit_setting.as_str(), spill.limit_bytes), ("maintenance_work_mem", 1 << 20));
    assert!(e.basis.iter().any(|b| b.contains("high end ×1.5")), "{:?}", e.basis);
    sandbox.assert_no_leaks();
}
