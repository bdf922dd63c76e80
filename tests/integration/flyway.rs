//! Flyway-style SQL folders: subfolders, repeatable migrations judged by
//! Flyway's checksums in production's `flyway_schema_history`, callbacks
//! where Flyway runs them, placeholders. Production is a real server whose
//! history rows are written as Flyway writes them, with checksums computed
//! here apart from rehearse's own code.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rehearse::backend::local::{find_binaries, LocalCluster};
use rehearse::kinds::MigrationTool;
use rehearse::migrations::sql::{SqlDir, SqlOptions};
use rehearse::migrations::{MigrationKind, Target};
use rehearse::report::MigrationStatus;
use rehearse::sys::process::ChildCommand;
use tokio_util::sync::CancellationToken;

use crate::support::{dumps, restored_cluster, Sandbox};

/// CRC-32 (IEEE, reflected, polynomial 0xEDB88320) bit by bit: apart from
/// the crate rehearse uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// What Flyway writes in `checksum` (its `ChecksumCalculator`): the CRC-32
/// of the script's lines, each without its line ending, as a signed int.
fn flyway_checksum(text: &str) -> i32 {
    let bytes: Vec<u8> = text.lines().flat_map(|line| line.bytes()).collect();
    crc32(&bytes) as i32
}

#[test]
fn the_tests_own_crc32_is_the_standard_one() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");
}

const V1: &str = "CREATE TABLE public.users (id int PRIMARY KEY, name text NOT NULL);\n";
/// The view as production's last run of `R__active_users.sql` made it.
const ACTIVE_USERS_BEFORE: &str =
    "CREATE OR REPLACE VIEW public.active_users AS\n  SELECT id, name FROM public.users;\n";
/// The view as the release changes it: it needs the column V2 adds.
const ACTIVE_USERS: &str =
    "CREATE OR REPLACE VIEW public.active_users AS\n  SELECT id, name, email FROM public.users;\n";
const USER_COUNT: &str = "-- rebuilt in ${flyway:defaultSchema}\r\nCREATE OR REPLACE VIEW ${flyway:defaultSchema}.user_count AS\r\n  SELECT count(*) AS n FROM public.users;\r\n";
/// What Flyway checksums of `USER_COUNT`: a repeatable, placeholders replaced.
const USER_COUNT_REPLACED: &str =
    "-- rebuilt in public\r\nCREATE OR REPLACE VIEW public.user_count AS\r\n  SELECT count(*) AS n FROM public.users;\r\n";
const AFTER_MIGRATE: &str = "-- checks what the release left in ${flyway:defaultSchema}
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                  WHERE table_schema = '${flyway:defaultSchema}' AND table_name = 'active_users' AND column_name = 'email')
  THEN RAISE EXCEPTION 'active_users has no email column'; END IF;
  IF EXISTS (SELECT 1 FROM ${flyway:defaultSchema}.active_users WHERE email IS NULL)
  THEN RAISE EXCEPTION 'the backfill did not run before afterMigrate'; END IF;
END $$;
INSERT INTO ${flyway:defaultSchema}.deploy_log (release) VALUES ('${release}');
";

/// The release's folder, Flyway style: production has applied V1 and both
/// repeatables (`R__active_users.sql` from an older text).
const RELEASE: &[(&str, &str)] = &[
    ("V1__create_users.sql", V1),
    ("V2__add_email.sql", "ALTER TABLE public.users ADD COLUMN email text;\n"),
    ("V3__backfill_email.sql", "UPDATE public.users SET email = name || '@example.test';\n"),
    ("U2__drop_email.sql", "ALTER TABLE public.users DROP COLUMN email;\n"),
    ("views/R__active_users.sql", ACTIVE_USERS),
    ("views/R__user_count.sql", USER_COUNT),
    ("callbacks/beforeEachMigrate.sql", "SET LOCAL lock_timeout = '1s';\n"),
    ("callbacks/afterMigrate.sql", AFTER_MIGRATE),
    ("callbacks/afterMigrateError.sql", "SELECT 1;\n"),
    ("README.md", "Flyway migrations of the shop.\n"),
];

/// Production's schema and Flyway's history of it, rows as Flyway writes them.
fn production_sql() -> String {
    let row = |rank: i32, version: &str, description: &str, script: &str, text: &str| {
        format!(
            "({rank}, {version}, '{description}', 'SQL', '{script}', {}, 'app', now() - interval '{} days', 25, true)",
            flyway_checksum(text),
            10 - rank
        )
    };
    format!(
        "{V1}
INSERT INTO public.users SELECT g, 'user' || g FROM generate_series(1, 50) g;
CREATE TABLE public.deploy_log (release text NOT NULL, at timestamptz NOT NULL DEFAULT now());
{ACTIVE_USERS_BEFORE}
{USER_COUNT_REPLACED}
CREATE TABLE public.flyway_schema_history (
    installed_rank integer NOT NULL PRIMARY KEY,
    version varchar(50),
    description varchar(200) NOT NULL,
    type varchar(20) NOT NULL,
    script varchar(1000) NOT NULL,
    checksum integer,
    installed_by varchar(100) NOT NULL,
    installed_on timestamp NOT NULL DEFAULT now(),
    execution_time integer NOT NULL,
    success boolean NOT NULL
);
CREATE INDEX flyway_schema_history_s_idx ON public.flyway_schema_history (success);
INSERT INTO public.flyway_schema_history VALUES
    {},
    {},
    {};
",
        row(1, "'1'", "create users", "V1__create_users.sql", V1),
        row(2, "NULL", "active users", "views/R__active_users.sql", ACTIVE_USERS_BEFORE),
        row(3, "NULL", "user count", "views/R__user_count.sql", USER_COUNT_REPLACED),
    )
}

/// Production, dumped once per test binary by a real server.
fn production_dump() -> &'static PathBuf {
    static DUMP: OnceLock<PathBuf> = OnceLock::new();
    DUMP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cancel = CancellationToken::new();
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures-flyway");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let bin = find_binaries(None, &cancel).await.unwrap();
            let cluster = LocalCluster::start(bin.clone(), &cancel).await.unwrap();
            let conn = cluster.conn().clone();
            let env = conn.libpq_env(&conn.dbname, "fixture");
            ChildCommand::new(bin.tool("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &production_sql()])
                .envs(env.clone())
                .run(&cancel)
                .await
                .expect("production loads");
            let dump = dir.join("flyway.dump");
            ChildCommand::new(bin.tool("pg_dump")).args(["-Fc", "-f"]).arg(&dump).envs(env).run(&cancel).await.unwrap();
            cluster.stop().await.unwrap();
            dump
        })
    })
}

/// Writes `files` (relative path, text) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

const FLYWAY_KEYS: &str = "  table: public.flyway_schema_history\n  placeholders:\n    release: \"2024.06\"\n";

/// The release rehearsed end to end: the pending versioned files, then
/// only the changed repeatable (its view needs V2's column), then the
/// callback from its subfolder, which checks from inside the rehearsal that
/// the view has the new column and the backfill ran; `beforeEachMigrate`
/// runs inside each migration's transaction.
#[test]
fn a_flyway_release_runs_versioned_then_changed_repeatables_then_callbacks() {
    let sandbox = Sandbox::new();
    write_tree(&sandbox.path().join("migrations"), RELEASE);
    let scenario = sandbox.scenario(production_dump(), FLYWAY_KEYS);
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let order: Vec<(&str, MigrationKind, &str)> =
        report.migrations.iter().map(|m| (m.id.as_str(), m.kind, m.description.as_str())).collect();
    assert_eq!(
        order,
        [
            ("V2__add_email", MigrationKind::Versioned, "add email"),
            ("V3__backfill_email", MigrationKind::Versioned, "backfill email"),
            ("R__active_users", MigrationKind::Repeatable, "active users"),
            ("afterMigrate", MigrationKind::Callback, "callback afterMigrate"),
        ],
        "R__user_count is unchanged since production applied it"
    );
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    let v2 = &report.migrations[0];
    assert!(v2.statements[0].query.starts_with("SET LOCAL lock_timeout = '1s'"), "{:?}", v2.statements);
    assert_eq!(v2.statements[0].line, None, "a callback's statement has no line in the migration's file");
    assert_eq!((v2.statements[1].line, v2.statements[1].lock_timeout_ms), (Some(1), Some(1000)));
    let after = report.migrations[3].statements.iter().map(|s| s.query.as_str()).collect::<Vec<_>>().join("\n");
    assert!(after.contains("INSERT INTO public.deploy_log (release) VALUES ('2024.06')"), "{after}");
    assert!(!after.contains("${"), "every placeholder replaced: {after}");
    // Never skipped in silence: the report lists what was not applied, and why.
    let source = &report.sources[0];
    assert_eq!((source.tool, source.history.as_deref()), (MigrationTool::Sql, Some("public.flyway_schema_history")));
    let skipped: Vec<&str> = source.skipped.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(
        skipped,
        ["README.md", "U2__drop_email.sql", "callbacks/afterMigrateError.sql", "views/R__user_count.sql"]
    );
    let md = out.markdown();
    assert!(
        md.contains("- `views/R__user_count.sql`: repeatable, unchanged since production applied it (checksum"),
        "{md}"
    );
    assert!(
        md.contains("`R__active_users` (repeatable) active users") && md.contains("(repeatable migration)"),
        "{md}"
    );
    sandbox.assert_no_leaks();
}

/// `pending` on the restored production, then every pending migration
/// applied by rehearse as one app of several: what is skipped and why, and
/// what rehearse's tracking table then says (keys under the app's name).
#[test]
fn pending_lists_unchanged_repeatables_and_unapplied_files_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), RELEASE);
    let options = SqlOptions {
        table: Some("public.flyway_schema_history".into()),
        placeholders: [("release".to_string(), "2024.06".to_string())].into(),
        app: Some("shop".into()),
    };
    let sql = SqlDir::scan(dir.path(), options).unwrap();
    let dump = production_dump();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = restored_cluster(dump, "flyway-pending").await;
        let conn = cluster.conn().clone();
        let db = rehearse::sys::db::connect(&conn, &conn.dbname, "flyway-pending").await.unwrap();
        let found = sql.pending(&db).await.unwrap();
        let ids: Vec<&str> = found.migrations.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["V2__add_email", "V3__backfill_email", "R__active_users", "afterMigrate"]);
        let skipped: Vec<(&str, &str)> = found.skipped.iter().map(|s| (s.file.as_str(), s.reason.as_str())).collect();
        let unchanged = format!(
            "repeatable, unchanged since production applied it (checksum {})",
            flyway_checksum(USER_COUNT_REPLACED)
        );
        assert_eq!(
            skipped,
            [
                ("README.md", "not an SQL file (migrations end in .sql)"),
                ("U2__drop_email.sql", "Flyway undo migration: rehearse applies forward migrations only"),
                (
                    "callbacks/afterMigrateError.sql",
                    "callback for Flyway's afterMigrateError event: not run by a rehearsal of migrate"
                ),
                ("views/R__user_count.sql", unchanged.as_str()),
            ]
        );

        let cancel = CancellationToken::new();
        // SQL files run in rehearse's own session: no tool, no relay.
        let network = rehearse::migrations::network::ToolNetwork::new(false);
        let target = Target {
            client: &db,
            conn: &conn,
            cancel: &cancel,
            watcher: None,
            network: &network,
            lock_timeout: None,
            explain_memory: false,
        };
        for m in &found.migrations {
            let applied = sql.apply(m, &target).await;
            assert!(applied.error.is_none(), "{}: {:?}", m.id, applied.error);
        }
        let rows: Vec<(String, Option<i32>)> = db
            .query("SELECT version, checksum FROM public.rehearse_schema_migrations ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let expected = [
            ("shop/2".to_string(), None),
            ("shop/3".to_string(), None),
            ("shop/R:views/R__active_users.sql".to_string(), Some(flyway_checksum(ACTIVE_USERS))),
        ];
        assert_eq!(rows, expected, "callbacks are not recorded");
        let again = sql.pending(&db).await.unwrap();
        assert_eq!(again.migrations.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["afterMigrate"]);
        let reason = |file: &str| again.skipped.iter().find(|s| s.file == file).map(|s| s.reason.clone());
        assert!(reason("views/R__active_users.sql").unwrap().contains("unchanged since it was last applied"));
        assert_eq!(
            reason("callbacks/beforeEachMigrate.sql").as_deref(),
            Some("callback for Flyway's beforeEachMigrate event: no migration is pending, so Flyway would not fire it")
        );
        let applied = sql.applied(&db).await.unwrap();
        assert_eq!(
            applied,
            ["V1__create_users", "V2__add_email", "V3__backfill_email", "R__active_users", "R__user_count"]
        );
        cluster.stop().await.unwrap();
    });
}

/// A placeholder with no value stops the run before anything starts,
/// naming the file and line and what is known.
#[test]
fn an_unknown_placeholder_is_refused_before_anything_starts() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("migrations");
    write_tree(
        &dir,
        &[
            ("V1__roles.sql", "SELECT 1;\n"),
            ("grants/R__grants.sql", "-- read access\n\nGRANT SELECT ON public.orders TO ${reader};\n"),
        ],
    );
    let dump = sandbox.write("prod.dump", "PGDMP\x01\x0e\x00");
    let scenario = sandbox.scenario(&dump, "  placeholders:\n    owner: app\n");
    sandbox
        .rehearse_bad_input(
            &["run", scenario.to_str().unwrap()],
            &[
                "grants/R__grants.sql line 3: unknown placeholder ${reader}",
                "${owner} from migrations.placeholders",
                "${flyway:defaultSchema}",
                "give it a value under migrations.placeholders",
            ],
        )
        .assert_nothing_ran();
}

/// A callback at the top of the folder is a callback, not a misnamed file;
/// the scenario's placeholders are replaced; without a Flyway table every
/// repeatable is pending.
#[test]
fn a_callback_at_the_top_no_longer_stops_discovery_and_user_placeholders_are_replaced() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("afterMigrate.sql", "INSERT INTO public.customers (name) VALUES ('${owner}');\n"),
        ("V1__comment.sql", "COMMENT ON TABLE public.orders IS 'owned by ${owner}';\n"),
        (
            "R__order_totals.sql",
            "CREATE OR REPLACE VIEW public.order_totals AS SELECT sum(total) AS total FROM public.orders;\n",
        ),
    ]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "  placeholders:\n    owner: billing team\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let order: Vec<(&str, MigrationKind)> = report.migrations.iter().map(|m| (m.id.as_str(), m.kind)).collect();
    assert_eq!(
        order,
        [
            ("V1__comment", MigrationKind::Versioned),
            ("R__order_totals", MigrationKind::Repeatable),
            ("afterMigrate", MigrationKind::Callback)
        ]
    );
    assert!(report.migrations[0].statements[0].query.contains("IS 'owned by billing team'"));
    assert!(report.migrations[2].statements[0].query.contains("VALUES ('billing team')"));
    sandbox.assert_no_leaks();
}
