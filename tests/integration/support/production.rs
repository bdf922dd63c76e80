//! Production's statistics for the estimate tests: `rehearse stats` of a
//! server holding exactly what a rehearsal restores (the same dump,
//! VACUUM ANALYZEd as the rehearsal's prepare stage does), so "production"
//! is this copy, and can be made bigger by editing the file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `rehearse stats` of `dump`, restored, to `out` and returns it.
pub fn stats_of_dump(dump: &Path, out: &Path) -> PathBuf {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = super::dumps::restored_cluster(dump, "stats-fixture").await;
        let conn = cluster.conn().clone();
        let client = rehearse::sys::db::connect(&conn, &conn.dbname, "stats-fixture").await.unwrap();
        client.batch_execute("VACUUM ANALYZE").await.unwrap();
        let url = format!(
            "host={} port={} user={} password={} dbname={}",
            conn.host,
            conn.port,
            conn.user,
            conn.password.expose(),
            conn.dbname
        );
        let status = Command::new(env!("CARGO_BIN_EXE_rehearse"))
            .args(["stats", "--url", &url, "--out"])
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success(), "rehearse stats failed");
        cluster.stop().await.unwrap();
    });
    out.to_path_buf()
}

/// Multiplies the sizes (rows, pages, bytes) of `relations` and their
/// indexes, TOAST tables and TOAST indexes in a stats file by `factor`.
pub fn scale_stats(path: &Path, relations: &[&str], factor: i64) {
    let mut stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    let list = stats["relations"].as_array_mut().unwrap();
    // A TOAST index belongs to its TOAST table, which belongs to the table.
    let mut owned: Vec<String> = relations.iter().map(|r| r.to_string()).collect();
    owned.extend(list.iter().filter(|r| relations.contains(&text(r, "table").as_str())).map(|r| text(r, "relation")));
    for r in list.iter_mut() {
        if owned.contains(&text(r, "relation")) || owned.contains(&text(r, "table")) {
            for key in ["rows", "pages", "bytes", "total_bytes"] {
                let v = r[key].as_i64().unwrap();
                r[key] = serde_json::json!(if v > 0 { v * factor } else { v });
            }
        }
    }
    std::fs::write(path, serde_json::to_string_pretty(&stats).unwrap()).unwrap();
}

/// A "production" of the test's own: starts a server, runs `sql` on it
/// (statement by statement: ALTER SYSTEM refuses a transaction block),
/// dumps its database into `sandbox`'s prod.dump (its grants with it, as a
/// real dump has them) and records `rehearse stats --role role` into
/// prod-stats.json, which it returns read.
pub fn production_with_role(
    sandbox: &super::Sandbox,
    sql: &str,
    role: &str,
) -> (super::OwnedServer, rehearse::estimate::stats::ProductionStats) {
    let server = super::OwnedServer::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(rehearse::sys::db::connect(&server.conn, "postgres", "test")).unwrap();
    for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
        rt.block_on(client.batch_execute(statement)).unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    }
    // The binaries the local backend restores with: a newer pg_dump's archive would not restore.
    let cancel = tokio_util::sync::CancellationToken::new();
    let bin = rt.block_on(rehearse::backend::local::find_binaries(None, &cancel)).unwrap().dir;
    let dump = Command::new(bin.join("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(sandbox.path().join("prod.dump"))
        .envs(server.conn.libpq_env("postgres", "test"))
        .output()
        .unwrap();
    assert!(dump.status.success(), "pg_dump: {}", String::from_utf8_lossy(&dump.stderr));
    let out = sandbox.rehearse(&["stats", "--url", &server.url(), "--role", role, "--out", "prod-stats.json"]);
    out.assert_code(0);
    let path = sandbox.path().join("prod-stats.json");
    let stats = rehearse::estimate::stats::ProductionStats::load(&path).unwrap_or_else(|e| panic!("{}", e.render()));
    (server, stats)
}

/// The first migration of `report`, which must have failed: its SQLSTATE and message.
pub fn failed_migration(report: &rehearse::report::Report) -> (String, String) {
    let m = report.migrations.first().unwrap_or_else(|| panic!("no migration: {:?} {:?}", report.status, report.error));
    assert_eq!(m.status, rehearse::report::MigrationStatus::Failed, "{m:?}");
    let e = m.error.as_ref().expect("a failed migration says why");
    (e.sqlstate.clone().unwrap_or_default(), e.message.clone())
}
