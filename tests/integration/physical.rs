//! `physical:`: a rehearsal on a copy of production's own physical backup.
//! The test's "production" is a server of its own with a bloated table
//! (half its rows deleted, never VACUUM FULLed); the test takes the base
//! backups itself with pg_basebackup, and reads the kept copy's relation
//! sizes, settings and rows with its own queries.

use std::path::{Path, PathBuf};
use std::process::Command;

use rehearse::sys::db::ConnInfo;

use crate::support::{OwnedServer, RunOutput, Sandbox};

/// Production's data: a table with half its rows deleted (its pages keep
/// their dead tuples' room), in a database of its own next to `postgres`.
const BLOATED: &str = "CREATE TABLE items (id int PRIMARY KEY, note text);
     INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;
     DELETE FROM items WHERE id % 2 = 0;";

/// A production server with the `app` database and its bloated table.
fn production() -> OwnedServer {
    let server = OwnedServer::start();
    server.sql("postgres", "CREATE DATABASE app");
    // Autovacuum would make the freed room reusable, but never gives it back to the file system mid-table.
    server.sql("app", BLOATED);
    server
}

/// `pg_basebackup -D DIR ARGS` of `server`, as a backup job would take it.
fn basebackup(server: &OwnedServer, dir: &Path, args: &[&str]) {
    let out = Command::new(server.bin_dir().join("pg_basebackup"))
        .arg("-D")
        .arg(dir)
        .args(args)
        // A spread checkpoint would make the test wait minutes for the backup to start.
        .arg("--checkpoint=fast")
        .args(["-h", &server.conn.host, "-p", &server.conn.port.to_string(), "-U", &server.conn.user])
        .env("PGPASSWORD", server.conn.password.expose())
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_basebackup {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A scenario rehearsing `migrations/` on database `app` of the backup described by `physical` (YAML lines).
fn scenario(sandbox: &Sandbox, physical: &str) -> PathBuf {
    sandbox.write(
        "scenario.yaml",
        &format!(
            "name: physical\nphysical:\n  {physical}\ndatabase: app\npostgres:\n  backend: local\n\
             migrations:\n  tool: sql\n  dir: migrations\n"
        ),
    )
}

const MIGRATION: (&str, &str) =
    ("0001_state.sql", "ALTER TABLE items ADD COLUMN state text; CREATE INDEX items_note ON items (note);");

/// A sandbox with the one migration the physical tests rehearse.
fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[MIGRATION]);
    sandbox
}

fn kept(sandbox: &Sandbox, dbname: &str) -> (PathBuf, ConnInfo) {
    sandbox.kept_copy(dbname)
}

fn remove_kept(out: &RunOutput, sandbox: &Sandbox) {
    sandbox.remove_kept(out)
}

/// `sql`'s single value, as text, on `conn`.
fn value(conn: &ConnInfo, dbname: &str, sql: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = rehearse::sys::db::connect(conn, dbname, "test").await.unwrap();
        c.query_one(&format!("SELECT ({sql})::text"), &[]).await.unwrap().get(0)
    })
}

const RELATION_SIZES: &str = "SELECT string_agg(relname || '=' || pg_relation_size(oid), ',' ORDER BY relname) \
                              FROM pg_class WHERE relname IN ('items', 'items_pkey')";

#[test]
fn a_tar_backup_with_streamed_wal_is_recovered_and_keeps_production_s_bloat() {
    let server = production();
    let sandbox = sandbox();
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Ft", "-X", "stream", "--label", "nightly"]);
    // A change after the backup: not in the copy (the backup ends at its own end).
    server.sql("app", "INSERT INTO items VALUES (100001, 'after the backup')");
    let source_sizes = value(&server.conn, "app", RELATION_SIZES);
    let scenario = scenario(&sandbox, &format!("basebackup: {}", backup.display()));

    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep"]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.migrations.len(), 1);
    let physical = report.dump.physical.as_ref().expect("dump.physical");
    assert_eq!(report.dump.source, rehearse::report::DumpSource::Physical);
    assert_eq!(physical.kind, rehearse::report::PhysicalKind::BasebackupTar);
    assert_eq!(physical.label.as_deref(), Some("nightly"));
    assert!(physical.start_lsn.is_some() && physical.end_lsn.is_some(), "{physical:?}");
    assert!(physical.databases.contains(&"app".to_string()) && physical.databases.contains(&"postgres".into()));
    let stages: Vec<_> = report.stages.iter().map(|s| s.stage.to_string()).collect();
    assert!(stages.contains(&"copy".into()) && stages.contains(&"recovery".into()), "{stages:?}");
    assert!(!stages.contains(&"analyze".into()) && !stages.contains(&"restore".into()), "{stages:?}");

    let markdown = out.markdown();
    for expected in
        ["recovered from the physical backup", "Recovered to: consistent", "present and untouched: postgres"]
    {
        assert!(markdown.contains(expected), "expected {expected:?} in:\n{markdown}");
    }
    assert!(out.stderr.contains("dbname=app"), "--keep says how to reach the rehearsed database:\n{}", out.stderr);
    let (_, copy) = kept(&sandbox, "app");
    assert_eq!(value(&copy, "app", "current_setting('archive_mode')"), "off");
    assert_eq!(value(&copy, "app", "SELECT count(*) FROM items WHERE note = 'after the backup'"), "0");
    assert_eq!(value(&copy, "app", "SELECT count(*) FROM items"), "10000");
    assert_eq!(
        value(
            &copy,
            "app",
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'state'"
        ),
        "1",
        "migrated"
    );
    // Production's bytes, dead tuples' room included: the same sizes as the source's (before the migration
    // touched items: adding a nullable column rewrites nothing).
    assert_eq!(value(&copy, "app", RELATION_SIZES), source_sizes);
    remove_kept(&out, &sandbox);
}

#[test]
fn a_plain_backup_with_fetched_wal_is_recovered_and_rehearsed() {
    let server = production();
    let sandbox = sandbox();
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Fp", "-X", "fetch"]);
    let source_sizes = value(&server.conn, "app", RELATION_SIZES);
    let scenario = scenario(&sandbox, &format!("basebackup: {}", backup.display()));
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep"]);
    out.assert_code(0);
    let physical = out.report().dump.physical.expect("dump.physical");
    assert_eq!(physical.kind, rehearse::report::PhysicalKind::BasebackupPlain);
    let (_, copy) = kept(&sandbox, "app");
    assert_eq!(value(&copy, "app", RELATION_SIZES), source_sizes);
    assert_eq!(value(&copy, "app", "current_setting('archive_mode')"), "off");
    remove_kept(&out, &sandbox);
    // The backup itself is untouched: still production's configuration, no signal file.
    assert!(!backup.join("recovery.signal").exists() && !backup.join("postgresql.conf.production").exists());
}

/// The report's snapshot cache status and key, as strings.
fn cache_of(report: &rehearse::report::Report) -> (Option<&str>, Option<String>) {
    (report.restore.cache.map(|c| c.as_str()), report.restore.cache_key.clone())
}

fn stages_of(report: &rehearse::report::Report) -> Vec<String> {
    report.stages.iter().map(|s| s.stage.to_string()).collect()
}

#[test]
fn the_same_backup_recovers_once_then_starts_from_the_snapshot_cache_and_a_new_backup_misses() {
    let server = production();
    // `postgres` is only a convenience database: production may have dropped it, and the
    // copy's own sessions (start, cache restart) must then use another.
    server.sql("app", "DROP DATABASE postgres");
    let sandbox = sandbox();
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Ft", "-X", "stream", "--label", "nightly"]);
    let scenario = scenario(&sandbox, &format!("basebackup: {}", backup.display()));
    let cold = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);
    cold.assert_code(0);
    let cold = cold.report();
    let (status, key) = cache_of(&cold);
    assert_eq!(status, Some("saved"), "{:?}", stages_of(&cold));
    assert!(stages_of(&cold).contains(&"snapshot".into()));

    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep", "--use-cache"]);
    out.assert_code(0);
    let warm = out.report();
    assert_eq!(cache_of(&warm), (Some("hit"), key.clone()), "the same backup and target: a hit");
    let stages = stages_of(&warm);
    assert!(!stages.contains(&"copy".into()) && !stages.contains(&"recovery".into()), "{stages:?}");
    // The backup's identity stays in the report, and the migration did the same.
    let (was, is) = (cold.dump.physical.as_ref().unwrap(), warm.dump.physical.as_ref().unwrap());
    assert_eq!((is.label.as_deref(), &is.start_lsn), (Some("nightly"), &was.start_lsn));
    assert!(!is.databases.iter().any(|d| d == "postgres"), "{:?}", is.databases);
    let results = |r: &rehearse::report::Report| {
        r.migrations.iter().map(|m| (m.id.clone(), m.status, m.statements.len())).collect::<Vec<_>>()
    };
    assert_eq!(results(&warm), results(&cold));
    assert!(out.markdown().contains("From the snapshot cache"), "{}", out.markdown());
    // The test's own reading of the cached copy: production's rows, migrated, archiving off.
    let (_, copy) = kept(&sandbox, "app");
    assert_eq!(value(&copy, "app", "SELECT count(*) FROM items"), "10000");
    let migrated = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'state'";
    assert_eq!(value(&copy, "app", migrated), "1");
    assert_eq!(value(&copy, "app", "current_setting('archive_mode')"), "off");
    remove_kept(&out, &sandbox);

    // Tonight's backup, after a change: another start LSN, another key.
    server.sql("app", "INSERT INTO items VALUES (100001, 'tonight')");
    std::fs::remove_dir_all(&backup).unwrap();
    basebackup(&server, &backup, &["-Ft", "-X", "stream", "--label", "nightly"]);
    let next = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);
    next.assert_code(0);
    let next = next.report();
    let (status, new_key) = cache_of(&next);
    assert_eq!(status, Some("saved"), "a new backup never reuses an entry");
    assert_ne!(new_key, key);
    assert!(stages_of(&next).contains(&"recovery".into()), "{:?}", stages_of(&next));
    sandbox.assert_no_leaks();
}

#[test]
fn a_tar_that_is_not_a_base_backup_is_bad_input_and_leaves_nothing() {
    let sandbox = sandbox();
    let dir = sandbox.path().join("backup");
    std::fs::create_dir(&dir).unwrap();
    sandbox.write("notes.txt", "not a backup");
    let status = Command::new("tar")
        .args(["-cf", dir.join("base.tar").to_str().unwrap(), "-C", sandbox.path().to_str().unwrap(), "notes.txt"])
        .status()
        .unwrap();
    assert!(status.success());
    let scenario = scenario(&sandbox, &format!("basebackup: {}", dir.display()));
    let out =
        sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &["is not a base backup", "pg_basebackup"]);
    out.assert_stopped_by(rehearse::error::ErrorKind::BackupInvalid);
}

#[test]
fn a_backup_without_its_wal_is_bad_input_and_leaves_nothing() {
    let server = production();
    let sandbox = sandbox();
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Ft", "-X", "none"]);
    let scenario = scenario(&sandbox, &format!("basebackup: {}", backup.display()));
    let out = sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &["holds no WAL", "-X stream"]);
    out.assert_stopped_by(rehearse::error::ErrorKind::BackupInvalid);
}

/// Production archiving its WAL into `archive` (owned by the server's user), as a PITR setup does.
fn archiving(server: &mut OwnedServer, archive: &Path) {
    std::fs::create_dir(archive).unwrap();
    let status = Command::new("chown").args(["postgres:postgres", archive.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    server.sql("postgres", "ALTER SYSTEM SET archive_mode = on");
    server.sql("postgres", &format!("ALTER SYSTEM SET archive_command = 'cp %p {}/%f'", archive.display()));
    server.restart();
}

/// Every file of `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (e.file_name().to_string_lossy().into_owned(), m.len(), m.modified().unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_point_in_time_target_excludes_a_later_change_and_the_archive_is_never_written() {
    let mut server = production();
    let sandbox = sandbox();
    let archive = sandbox.path().join("archive");
    archiving(&mut server, &archive);
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Ft", "-X", "stream"]);
    server.sql("app", "INSERT INTO items VALUES (100001, 'before the target')");
    let target = value(&server.conn, "app", "clock_timestamp()");
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.sql("app", "INSERT INTO items VALUES (100002, 'after the target')");
    // Hand the segment with both commits to the archive, and wait until the
    // archiver reports it done: the file appears while `cp` is still writing it.
    let segment = value(&server.conn, "app", "pg_walfile_name(pg_switch_wal())");
    let archived = "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver";
    for _ in 0..300 {
        if value(&server.conn, "app", archived) >= segment {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(value(&server.conn, "app", archived) >= segment, "{segment} was not archived");
    let before = listing(&archive);
    let scenario = scenario(
        &sandbox,
        &format!(
            // A slow archive (every fetch waits a second): replay outlasts the server's start, as a
            // real archive's does, and the run must wait for the end of replay, not for the start.
            "basebackup: {}\n  restore_command: sleep 1 && cp {}/%f %p\n  target_time: \"{target}\"",
            backup.display(),
            archive.display()
        ),
    );

    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep"]);
    out.assert_code(0);
    let physical = out.report().dump.physical.expect("dump.physical");
    assert_eq!(physical.target, rehearse::report::RecoveryTargetKind::Time);
    let (cluster, copy) = kept(&sandbox, "app");
    let log = std::fs::read_to_string(cluster.join("server.log")).unwrap_or_default();
    assert!(physical.recovered_to.is_some(), "{physical:?}\nthe copy's log:\n{log}");
    let notes = "SELECT string_agg(note, ',' ORDER BY id) FROM items WHERE id > 100000";
    assert_eq!(value(&copy, "app", notes), "before the target");
    // The copy was promoted to a timeline of its own, and wrote nothing into production's archive.
    assert_eq!(value(&copy, "app", "current_setting('archive_mode')"), "off");
    assert_eq!(value(&copy, "app", "pg_is_in_recovery()"), "false");
    remove_kept(&out, &sandbox);
    assert_eq!(listing(&archive), before, "the archive changed");
}

/// Every file under `dir`, with its size and modification time.
fn tree_listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let m = std::fs::symlink_metadata(entry.path()).unwrap();
        if m.is_dir() {
            files.extend(tree_listing(&entry.path()));
        } else {
            files.push((entry.path(), m.len(), m.modified().unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn a_backup_with_a_tablespace_is_recovered_inside_the_copy_in_both_formats_and_never_written() {
    let server = production();
    let sandbox = Sandbox::new();
    // A rewrite of a table in the tablespace: the copy writes new files there.
    sandbox.migrations(&[("0001_hot.sql", "ALTER TABLE hot ALTER COLUMN id TYPE bigint;")]);
    let location = sandbox.path().join("production_tablespace");
    std::fs::create_dir(&location).unwrap();
    assert!(Command::new("chown").args(["postgres:postgres", location.to_str().unwrap()]).status().unwrap().success());
    server.sql("postgres", &format!("CREATE TABLESPACE fast LOCATION '{}'", location.display()));
    server.sql("app", "CREATE TABLE hot (id int, note text) TABLESPACE fast");
    server.sql("app", "INSERT INTO hot SELECT g, 'x' FROM generate_series(1, 1000) g");
    let tar = sandbox.path().join("backup_tar");
    basebackup(&server, &tar, &["-Ft", "-X", "stream"]);
    // A plain backup on production's host must map the tablespace elsewhere (-T): its own copy.
    let plain = sandbox.path().join("backup_plain");
    let plain_tablespace = sandbox.path().join("backup_plain_tablespace");
    let mapping = format!("--tablespace-mapping={}={}", location.display(), plain_tablespace.display());
    basebackup(&server, &plain, &["-Fp", "-X", "stream", &mapping]);
    let backups_before = (tree_listing(&tar), tree_listing(&plain), tree_listing(&plain_tablespace));

    for backup in [&tar, &plain] {
        let scenario = scenario(&sandbox, &format!("basebackup: {}", backup.display()));
        let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep", "--use-cache"]);
        out.assert_code(0);
        assert_eq!(out.report().migrations.len(), 1);
        assert!(out.stderr.contains("a backup with tablespaces is not cached"), "{}", out.stderr);
        let (cluster, copy) = kept(&sandbox, "app");
        assert_eq!(value(&copy, "app", "SELECT count(*) FROM hot"), "1000");
        let hot_type = "SELECT format_type(atttypid, NULL) FROM pg_attribute \
                        WHERE attrelid = 'hot'::regclass AND attname = 'id'";
        assert_eq!(value(&copy, "app", hot_type), "bigint", "the migration ran on the copy");
        // The test's own reading: the copy's tablespace is inside the copy's directory.
        let at = value(&copy, "app", "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'fast'");
        assert!(Path::new(&at).starts_with(&cluster), "{backup:?}: the tablespace is at {at}, outside {cluster:?}");
        remove_kept(&out, &sandbox);
    }
    let backups_after = (tree_listing(&tar), tree_listing(&plain), tree_listing(&plain_tablespace));
    assert_eq!(backups_after, backups_before, "a backup changed");
}

#[test]
fn a_backup_of_a_version_without_binaries_is_exit_4_naming_both_versions() {
    let server = production();
    let sandbox = sandbox();
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Fp", "-X", "fetch"]);
    // A backup of a major version this machine has no binaries for.
    std::fs::write(backup.join("PG_VERSION"), "11\n").unwrap();
    let scenario = scenario(&sandbox, &format!("basebackup: {}", backup.display()));
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(rehearse::error::ErrorKind::ServerBinariesMissing);
    for expected in ["PostgreSQL 11 (its PG_VERSION)", "are PostgreSQL 15", "postgresql-11"] {
        assert!(out.stderr.contains(expected), "expected {expected:?} in:\n{}", out.stderr);
    }
    sandbox.assert_no_leaks();
}

#[test]
fn sigint_during_recovery_leaves_no_server_no_data_directory_and_no_restore_command() {
    let mut server = production();
    let sandbox = sandbox();
    let archive = sandbox.path().join("archive");
    archiving(&mut server, &archive);
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Ft", "-X", "stream"]);
    // A slow archive: each restore_command the recovering copy runs takes 20s.
    let scenario = scenario(
        &sandbox,
        &format!("basebackup: {}\n  restore_command: sleep 20; cp {}/%f %p", backup.display(), archive.display()),
    );
    let started = std::time::Instant::now();
    let out = crate::support::run_and_signal(
        &sandbox,
        &["run", scenario.to_str().unwrap()],
        "recovery:",
        nix::sys::signal::Signal::SIGINT,
    );
    out.assert_code(130);
    assert!(started.elapsed().as_secs() < 20, "the recovery was stopped, not waited for");
    let report = out.report();
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some("recovery"), "{}", out.stderr);
    // No server, no data directory, no restore_command left sleeping (it inherits the run's TMPDIR).
    sandbox.assert_no_leaks();
}

/// `pgbackrest ARGS` as the server's user, with `conf` and the superuser's password (for stanza-create, backup).
fn pgbackrest(server: &OwnedServer, conf: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", "pgbackrest", &format!("--config={}", conf.display()), "--stanza=main"])
        .args(args)
        .env("PGPASSWORD", server.conn.password.expose())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pgbackrest {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_pgbackrest_backup_is_restored_by_its_command_and_recovered_from_its_repository() {
    if !Path::new("/usr/bin/pgbackrest").exists() {
        panic!("pgbackrest is not installed: `make deps` installs it");
    }
    let mut server = production();
    let sandbox = sandbox();
    let repo = sandbox.path().join("pgbackrest");
    for dir in ["repo", "log", "lock"] {
        std::fs::create_dir_all(repo.join(dir)).unwrap();
    }
    let data = value(&server.conn, "postgres", "current_setting('data_directory')");
    let conf = repo.join("pgbackrest.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nrepo1-path={r}/repo\nlog-path={r}/log\nlock-path={r}/lock\nstart-fast=y\n\
             log-level-console=warn\n[main]\npg1-path={data}\npg1-socket-path={socket}\npg1-port={port}\npg1-user=rehearse\n",
            r = repo.display(),
            socket = server.conn.host,
            port = server.conn.port,
        ),
    )
    .unwrap();
    assert!(Command::new("chown")
        .args(["-R", "postgres:postgres", repo.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    server.sql("postgres", "ALTER SYSTEM SET archive_mode = on");
    server.sql(
        "postgres",
        &format!(
            "ALTER SYSTEM SET archive_command = 'pgbackrest --config={} --stanza=main archive-push %p'",
            conf.display()
        ),
    );
    server.restart();
    pgbackrest(&server, &conf, &["stanza-create"]);
    pgbackrest(&server, &conf, &["--type=full", "backup"]);
    let source_sizes = value(&server.conn, "app", RELATION_SIZES);
    let before = listing(&repo.join("repo/archive/main"));

    let scenario = scenario(
        &sandbox,
        &format!(
            "restore: pgbackrest --config={c} --stanza=main --pg1-path={{datadir}} restore\n  \
             restore_command: pgbackrest --config={c} --stanza=main --pg1-path={{datadir}} archive-get %f \"%p\"",
            c = conf.display()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep", "--use-cache"]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(cache_of(&report), (None, None), "the backup tool's restore is never cached");
    let physical = report.dump.physical.expect("dump.physical");
    assert_eq!(physical.kind, rehearse::report::PhysicalKind::RestoreCommand);
    assert_eq!(physical.source, "pgbackrest", "the program only, never its arguments");
    assert!(out.stderr.contains("physical.restore is not cached"), "the run says why:\n{}", out.stderr);
    let (_, copy) = kept(&sandbox, "app");
    assert_eq!(value(&copy, "app", RELATION_SIZES), source_sizes);
    assert_eq!(value(&copy, "app", "current_setting('archive_mode')"), "off");
    remove_kept(&out, &sandbox);
    // The repository's archive holds what it held: the promoted copy pushed nothing.
    assert_eq!(listing(&repo.join("repo/archive/main")), before);
}

#[test]
fn a_recovery_target_before_the_backup_s_end_is_bad_input_and_leaves_nothing() {
    let server = production();
    let sandbox = sandbox();
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Fp", "-X", "fetch"]);
    // The very start of the WAL: long before the backup's checkpoint.
    let scenario = scenario(&sandbox, &format!("basebackup: {}\n  target_lsn: 0/1000000", backup.display()));
    let out = sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &["lies before the end of the backup"]);
    out.assert_stopped_by(rehearse::error::ErrorKind::BackupInvalid);
}

#[test]
fn a_postgresql_18_backup_recovers_on_18_s_binaries_and_is_exit_4_on_15_s() {
    let pg18 = crate::postgres18::pg18_bin();
    let server = OwnedServer::start_with(Some(Path::new(&pg18)));
    server.sql("postgres", "CREATE DATABASE app");
    server.sql("app", BLOATED);
    let sandbox = sandbox();
    let backup = sandbox.path().join("backup");
    basebackup(&server, &backup, &["-Ft", "-X", "stream"]);
    let scenario = scenario(&sandbox, &format!("basebackup: {}", backup.display()));
    let fifteen = crate::support::pg_bin_dir();

    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--pg-bin", &fifteen]);
    out.assert_stopped_by(rehearse::error::ErrorKind::ServerBinariesMissing);
    for expected in ["PostgreSQL 18 (its PG_VERSION)", "are PostgreSQL 15", "postgresql-18"] {
        assert!(out.stderr.contains(expected), "expected {expected:?} in:\n{}", out.stderr);
    }
    sandbox.assert_no_leaks();

    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--pg-bin", &pg18]);
    out.assert_code(0);
    let report = out.report();
    assert!(report.postgres.version.as_deref().is_some_and(|v| v.starts_with("18")), "{:?}", report.postgres);
    assert_eq!(report.dump.physical.and_then(|p| p.pg_version).as_deref(), Some("18"));
    sandbox.assert_no_leaks();
}

#[test]
fn a_physical_scenario_that_contradicts_itself_is_bad_input_before_anything_runs() {
    let sandbox = sandbox();
    let dir = sandbox.path().join("backup");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("PG_VERSION"), "15\n").unwrap();
    let cases = [
        (format!("name: t\nphysical:\n  basebackup: {}\npostgres:\n  backend: local\n", dir.display()), "database: NAME"),
        (
            format!("name: t\ndump: x.dump\nphysical:\n  basebackup: {}\ndatabase: app\n", dir.display()),
            "would be unused",
        ),
        (
            format!(
                "name: t\nphysical:\n  basebackup: {}\ndatabase: app\npostgres:\n  settings:\n    archive_command: cp %p /x\n",
                dir.display()
            ),
            "postgres.settings.archive_command is refused on a physical copy",
        ),
        (format!("name: t\ndatabase: app\ndump: {}\n", crate::support::tiny_demo_dump().display()), "there is no `physical:`"),
        (
            format!("name: t\nphysical:\n  basebackup: {}\n  target: latest\ndatabase: app\n", dir.display()),
            "no physical.restore_command",
        ),
        (format!("name: t\nphysical:\n  basebackup: {}/nope\ndatabase: app\n", dir.display()), "does not exist"),
        (
            format!("name: t\nphysical:\n  basebackup: {}\n  target_time: \"2026-12-05 23:00\"\ndatabase: app\n", dir.display()),
            "a time without a zone would be read in the copy's zone",
        ),
    ];
    for (yaml, expected) in cases {
        let scenario = sandbox.write("bad.yaml", &format!("{yaml}migrations:\n  tool: sql\n  dir: migrations\n"));
        sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &[expected]);
    }
}

#[test]
fn a_backup_tool_s_restore_that_fails_or_writes_nothing_is_bad_input_and_leaves_nothing() {
    let sandbox = sandbox();
    for (command, expected) in [
        ("false {datadir}", "physical.restore (`false ...`) failed: run it by hand"),
        ("true {datadir}", "exited 0 but wrote nothing into {datadir}"),
    ] {
        let scenario = scenario(&sandbox, &format!("restore: {command}"));
        let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
        out.assert_stopped_by(rehearse::error::ErrorKind::BackupInvalid);
        assert!(out.stderr.contains(expected), "expected {expected:?} in:\n{}", out.stderr);
        sandbox.assert_no_leaks();
    }
}

#[test]
fn sigint_during_the_copy_leaves_no_data_directory_and_no_restore_command() {
    let sandbox = sandbox();
    // A backup tool's restore that takes its time.
    let scenario = scenario(&sandbox, "restore: sleep 30; touch {datadir}/PG_VERSION");
    let started = std::time::Instant::now();
    let out = crate::support::run_and_signal(
        &sandbox,
        &["run", scenario.to_str().unwrap()],
        "copy:",
        nix::sys::signal::Signal::SIGINT,
    );
    out.assert_code(130);
    assert!(started.elapsed().as_secs() < 30, "the restore command was stopped, not waited for");
    assert_eq!(out.report().stopped_at_stage.map(|s| s.as_str()), Some("copy"), "{}", out.stderr);
    sandbox.assert_no_leaks();
}
