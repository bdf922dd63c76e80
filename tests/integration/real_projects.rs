//! Real projects nobody here wrote, as their users run them. Optuna (from
//! PyPI) ships its Alembic tree inside its package, with an `alembic.ini`
//! whose `sqlalchemy.url` is a SQLite file, and runs it itself
//! (`RDBStorage` builds the Config in code). A storage made by Optuna 2.6
//! (revision v2.6.0.a) is upgraded to Optuna 5's head: five revisions, with
//! data migrations through the ORM, type changes and an index build.

use std::path::{Path, PathBuf};
use std::process::Command;

use rehearse::pg::LockMode;

use crate::support::*;

const OPTUNA: &str = "optuna==5.0.0";

/// Optuna 2.6's storage, as a study of 500 trials leaves it: old-style
/// distributions, objective values, and intermediate values with an inf.
const STUDY: &str = "
INSERT INTO studies (study_name) VALUES ('nightly');
INSERT INTO study_directions (direction, study_id, objective) VALUES ('MINIMIZE', 1, 0);
INSERT INTO trials (study_id, number, state, datetime_start, datetime_complete)
  SELECT 1, g - 1, 'COMPLETE', now(), now() FROM generate_series(1, 500) g;
INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)
  SELECT trial_id, 'x', trial_id / 1000.0,
         '{\"name\": \"UniformDistribution\", \"attributes\": {\"low\": 0.0, \"high\": 1.0}}' FROM trials;
INSERT INTO trial_values (trial_id, value, objective) SELECT trial_id, trial_id * 0.5, 0 FROM trials;
INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value)
  SELECT trial_id, 0, CASE WHEN trial_id % 50 = 0 THEN 'Infinity'::float8 ELSE trial_id END FROM trials;
";

/// Optuna's storage package (where its alembic.ini is), in `python`'s environment.
fn optuna_rdb_dir(python: &str) -> PathBuf {
    let out = Command::new(python)
        .args(["-c", "import os, optuna.storages._rdb as m; print(os.path.dirname(m.__file__))"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Optuna's own upgrade of database `db` on `server` to `revision`, as
/// RDBStorage runs it: the Config built in code, the URL set in it.
fn optuna_upgrade(python: &str, rdb: &Path, server: &OwnedServer, db: &str, revision: &str) {
    let url = format!(
        "postgresql+psycopg2://{}:{}@127.0.0.1:{}/{db}",
        server.conn.user,
        server.conn.password.expose(),
        server.conn.port
    );
    let script = "import sys\nfrom alembic.config import Config\nfrom alembic import command\n\
                  cfg = Config('alembic.ini')\ncfg.set_main_option('script_location', 'alembic')\n\
                  cfg.set_main_option('sqlalchemy.url', sys.argv[1].replace('%', '%%'))\n\
                  command.upgrade(cfg, sys.argv[2])\n";
    let out = Command::new(python).args(["-c", script, &url, revision]).current_dir(rdb).output().unwrap();
    assert!(out.status.success(), "optuna upgrade {revision}: {}", String::from_utf8_lossy(&out.stderr));
}

fn pg_tool(server: &OwnedServer, tool: &str, conn: &rehearse::sys::db::ConnInfo, db: &str) -> Command {
    let mut cmd = Command::new(server.bin_dir().join(tool));
    cmd.envs(conn.libpq_env(db, "test"));
    cmd
}

/// The schema of `db`, as pg_dump prints it (its random \restrict key left out).
fn schema(server: &OwnedServer, conn: &rehearse::sys::db::ConnInfo, db: &str) -> String {
    let out = pg_tool(server, "pg_dump", conn, db).args(["--schema-only", "--no-owner", "-d", db]).output().unwrap();
    assert!(out.status.success(), "pg_dump {db}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn one_value(conn: &rehearse::sys::db::ConnInfo, db: &str, sql: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = rehearse::sys::db::connect(conn, db, "test").await.unwrap();
        c.query_one(&format!("SELECT ({sql})::text"), &[]).await.unwrap().get(0)
    })
}

#[test]
fn optuna_s_own_alembic_tree_upgrades_a_2_6_storage_on_the_copy_exactly_as_by_hand() {
    let python = made_venv("optuna-5", &[OPTUNA, "psycopg2-binary"]);
    let rdb = optuna_rdb_dir(&python);
    let sqlite = rdb.join("alembic.db");
    let _ = std::fs::remove_file(&sqlite);
    let server = OwnedServer::start();
    server.sql("postgres", "CREATE DATABASE optuna");
    optuna_upgrade(&python, &rdb, &server, "optuna", "v2.6.0.a");
    server.sql("optuna", STUDY);
    let sandbox = Sandbox::new();
    let dump = sandbox.path().join("optuna.dump");
    let out =
        pg_tool(&server, "pg_dump", &server.conn, "optuna").args(["-Fc", "-d", "optuna", "-f"]).arg(&dump).output();
    assert!(out.unwrap().status.success());
    // The test's own reading of the lock v3.2.0.a's index build takes: its statement, on production, rolled back.
    let taken =
        "SELECT string_agg(mode, ',') FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'trials'::regclass";
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let server_mode: String = rt.block_on(async {
        let c = rehearse::sys::db::connect(&server.conn, "optuna", "test").await.unwrap();
        c.batch_execute("BEGIN; CREATE INDEX trials_study_id_key ON trials (study_id)").await.unwrap();
        let mode = c.query_one(taken, &[]).await.unwrap().get(0);
        c.batch_execute("ROLLBACK").await.unwrap();
        mode
    });
    assert_eq!(server_mode, "ShareLock");

    let scenario = sandbox.write(
        "optuna.yaml",
        &format!(
            "name: optuna-2.6-to-5\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  dir: {}\n  \
             python: {python}\n  target: head\n",
            dump.display(),
            rdb.display()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep"]);
    out.assert_code(0);
    let report = out.report();
    let ids: Vec<_> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["v3.0.0.a", "v3.0.0.b", "v3.0.0.c", "v3.0.0.d", "v3.2.0.a"]);
    assert!(report.migrations.iter().all(|m| !m.statements.is_empty()), "every revision ran SQL on the copy");
    let index = report.migrations.last().unwrap();
    assert!(
        index.locks.iter().any(|l| l.relation == "public.trials" && l.mode == LockMode::ShareLock),
        "{:?}",
        index.locks
    );
    // alembic.ini's SQLite URL was never used, and production was never migrated.
    assert!(!sqlite.exists(), "Optuna's alembic.ini URL ({}) was used", sqlite.display());
    assert_eq!(one_value(&server.conn, "optuna", "SELECT version_num FROM alembic_version"), "v2.6.0.a");

    // The same upgrade by hand, on another restore of the same dump: the copy ends exactly there.
    server.sql("postgres", "CREATE DATABASE byhand");
    let restored = pg_tool(&server, "pg_restore", &server.conn, "byhand").args(["-d", "byhand"]).arg(&dump).output();
    assert!(restored.unwrap().status.success());
    optuna_upgrade(&python, &rdb, &server, "byhand", "head");
    let (_, kept) = sandbox.kept_copy("rehearse");
    assert_eq!(schema(&server, &kept, "rehearse"), schema(&server, &server.conn, "byhand"));
    let data = "SELECT md5(string_agg(param_id || distribution_json, ',' ORDER BY param_id)) FROM trial_params";
    assert_eq!(one_value(&kept, "rehearse", data), one_value(&server.conn, "byhand", data));
    let values = "SELECT md5(string_agg(concat_ws(':', trial_id, intermediate_value, intermediate_value_type), ',' \
                  ORDER BY trial_id)) FROM trial_intermediate_values";
    assert_eq!(one_value(&kept, "rehearse", values), one_value(&server.conn, "byhand", values));
    sandbox.remove_kept(&out);
}
