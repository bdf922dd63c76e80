//! Fixtures and assertions shared by the integration tests.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rehearse::backend::local::{find_binaries, LocalCluster};
use rehearse::process::ChildCommand;
use rehearse::report::Report;
use tokio_util::sync::CancellationToken;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A private directory per test: scenario, migrations, reports, and the
/// TMPDIR the run makes its cluster in, so leaks are easy to see.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("rht-").tempdir_in("/tmp").unwrap();
        // The server runs as `postgres` when tests run as root: it must be able
        // to reach the cluster dir inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        std::fs::set_permissions(dir.path().join("tmp"), std::fs::Permissions::from_mode(0o755)).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn reports(&self) -> PathBuf {
        self.path().join("reports")
    }

    /// Writes `files` (name, SQL) into `migrations/` and returns the folder.
    pub fn migrations(&self, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path().join("migrations");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, sql) in files {
            std::fs::write(dir.join(name), sql).unwrap();
        }
        dir
    }

    /// Writes a scenario that rehearses `migrations/` on `dump`, plus `extra` YAML.
    pub fn scenario(&self, dump: &Path, extra: &str) -> PathBuf {
        self.scenario_on("backend: local", dump, extra)
    }

    /// Like `scenario`, with `postgres` holding `postgres` (YAML lines, indented by the caller after the first).
    pub fn scenario_on(&self, postgres: &str, dump: &Path, extra: &str) -> PathBuf {
        let path = self.path().join("scenario.yaml");
        std::fs::write(
            &path,
            format!(
                "name: test\ndump: {}\npostgres:\n  {postgres}\nmigrations:\n  tool: sql\n  dir: migrations\n{extra}",
                dump.display()
            ),
        )
        .unwrap();
        path
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `rehearse ARGS` with this sandbox as TMPDIR and reports in `reports/`.
    pub fn rehearse(&self, args: &[&str]) -> RunOutput {
        self.rehearse_env(args, &[])
    }

    /// Runs `rehearse ARGS` with extra environment variables.
    pub fn rehearse_env(&self, args: &[&str], env: &[(&str, &str)]) -> RunOutput {
        let out = self.command(args).envs(env.iter().copied()).output().expect("rehearse runs");
        RunOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            reports: self.reports(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehearse"));
        // `--use-cache` is the tests' own flag: without it, each run restores
        // for itself; with it, the cache lives in the sandbox.
        let run = args.first() == Some(&"run");
        let use_cache = args.contains(&"--use-cache");
        cmd.args(args.iter().filter(|a| **a != "--use-cache"))
            .env("TMPDIR", self.path().join("tmp"))
            .env("REHEARSE_CACHE_DIR", self.path().join("cache"))
            .current_dir(self.path())
            .stdin(Stdio::null());
        // Tests run in CI too: their reports must not land on the job's summary page.
        cmd.env_remove("GITHUB_STEP_SUMMARY");
        if run && !args.contains(&"--out") {
            cmd.arg("--out").arg(self.reports());
        }
        if run && !use_cache {
            cmd.arg("--no-cache");
        }
        cmd
    }

    /// Nothing of a run is left: no temp dir, no server process.
    pub fn assert_no_leaks(&self) {
        let tmp = self.path().join("tmp");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "the run left files in its TMPDIR: {left:?}");
        let procs = processes_mentioning(self.path());
        assert!(procs.is_empty(), "the run left processes running: {procs:?}");
    }
}

/// Command lines of live processes that mention `path`.
pub fn processes_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

pub struct RunOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub reports: PathBuf,
}

impl RunOutput {
    pub fn report(&self) -> Report {
        let text = std::fs::read_to_string(self.reports.join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json ({e}); stderr:\n{}", self.stderr));
        serde_json::from_str(&text).expect("report.json follows the model")
    }

    pub fn markdown(&self) -> String {
        std::fs::read_to_string(self.reports.join("report.md")).expect("report.md was written")
    }

    pub fn junit(&self) -> String {
        std::fs::read_to_string(self.reports.join("junit.xml")).expect("junit.xml was written")
    }

    pub fn json_text(&self) -> String {
        std::fs::read_to_string(self.reports.join("report.json")).expect("report.json was written")
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// A source database with owners, grants and awkward data, dumped in every
/// format once per test binary. Row counts come from the source server.
pub struct Dumps {
    pub dir: PathBuf,
    pub customers: i64,
    pub orders: i64,
}

impl Dumps {
    pub fn path(&self, format: &str) -> PathBuf {
        self.dir.join(format!("source.{format}"))
    }
}

const SOURCE_SQL: &str = r#"
CREATE ROLE app NOLOGIN;
CREATE ROLE "Read Only" NOLOGIN;
CREATE TABLE public.customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    meta jsonb
);
CREATE TABLE public.orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers (id),
    total numeric(10, 2) NOT NULL,
    note text
);
CREATE INDEX orders_customer_id_idx ON public.orders (customer_id);
SELECT setseed(0.42);
INSERT INTO public.customers (name, meta)
SELECT 'customer ' || g, jsonb_build_object('tier', g % 3) FROM generate_series(1, 3000) g;
INSERT INTO public.orders (id, customer_id, total, note)
SELECT g, 1 + (random() * 2999)::int, round((random() * 500)::numeric, 2),
       CASE WHEN g % 1000 = 0 THEN E'tab\there\nALTER TABLE x OWNER TO intruder;\\' END
  FROM generate_series(1, 12000) g;
ALTER TABLE public.customers OWNER TO app;
ALTER TABLE public.orders OWNER TO app;
GRANT SELECT ON public.customers, public.orders TO "Read Only";
-- History tables of other tools, as production would have them: Alembic is
-- part way through tests/fixtures/alembic_versions.
CREATE TABLE public.alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
INSERT INTO public.alembic_version VALUES ('r2_orders_note_index');
CREATE TABLE public.schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO public.schema_migrations VALUES (2, false);
CREATE TABLE public.flyway_schema_history (
    installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
    script varchar(1000) NOT NULL, success boolean NOT NULL
);
INSERT INTO public.flyway_schema_history VALUES
    (1, '1', 'a', 'V1__a.sql', true),
    (2, '1.1', 'b', 'V1_1__b.sql', true),
    (3, '2', 'c', 'V2__c.sql', false),
    (4, NULL, 'views', 'R__views.sql', true);
"#;

static DUMPS: OnceLock<Dumps> = OnceLock::new();

pub fn dumps() -> &'static Dumps {
    DUMPS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(make_dumps())
    })
}

async fn make_dumps() -> Dumps {
    let cancel = CancellationToken::new();
    let dir = tempfile::Builder::new().prefix("rht-dumps-").tempdir_in("/tmp").unwrap().keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = find_binaries(None, &cancel).await.expect("PostgreSQL binaries (run `make deps`)");
    let cluster = LocalCluster::start(bin.clone(), &cancel).await.expect("source cluster starts");
    let conn = cluster.conn().clone();
    let env = conn.libpq_env(&conn.dbname, "fixture");
    ChildCommand::new(bin.tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", SOURCE_SQL])
        .envs(env.clone())
        .run(&cancel)
        .await
        .expect("source data loads");
    let client = rehearse::db::connect(&conn, &conn.dbname, "fixture").await.unwrap();
    let count = |t: &'static str| {
        let client = &client;
        async move { client.query_one(&format!("SELECT count(*) FROM {t}"), &[]).await.unwrap().get::<_, i64>(0) }
    };
    let (customers, orders) = (count("customers").await, count("orders").await);
    for (format, flag) in [("custom", "-Fc"), ("directory", "-Fd"), ("tar", "-Ft"), ("plain", "-Fp")] {
        ChildCommand::new(bin.tool("pg_dump"))
            .args([flag, "-f"])
            .arg(dir.join(format!("source.{format}")))
            .envs(env.clone())
            .run(&cancel)
            .await
            .expect("pg_dump works");
    }
    let plain = std::fs::read(dir.join("source.plain")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    std::fs::write(dir.join("source.plain-gz"), gz.finish().unwrap()).unwrap();
    cluster.stop().await.expect("source cluster stops");
    Dumps { dir, customers, orders }
}

/// Starts `rehearse ARGS` and sends `signal` once a stderr line contains `when`.
pub fn run_and_signal(sandbox: &Sandbox, args: &[&str], when: &str, signal: nix::sys::signal::Signal) -> RunOutput {
    run_and_signal_with(sandbox.command(args), sandbox, when, signal)
}

/// `run_and_signal` for a prepared command (extra environment, say).
pub fn run_and_signal_with(
    command: Command,
    sandbox: &Sandbox,
    when: &str,
    signal: nix::sys::signal::Signal,
) -> RunOutput {
    signal_command(command, sandbox, when, signal, 1).0
}

/// Like `run_and_signal`, sending the signal `times` times 100ms apart;
/// also returns how long the run took to exit after the first signal.
pub fn run_and_signal_times(
    sandbox: &Sandbox,
    args: &[&str],
    when: &str,
    signal: nix::sys::signal::Signal,
    times: usize,
) -> (RunOutput, Duration) {
    signal_command(sandbox.command(args), sandbox, when, signal, times)
}

fn signal_command(
    mut command: Command,
    sandbox: &Sandbox,
    when: &str,
    signal: nix::sys::signal::Signal,
    times: usize,
) -> (RunOutput, Duration) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    let mut signalled_at = None;
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        seen.push_str(&line);
        if signalled_at.is_none() && line.contains(when) {
            std::thread::sleep(Duration::from_millis(300));
            signalled_at = Some(std::time::Instant::now());
            for i in 0..times {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
            }
        }
        line.clear();
    }
    let out = child.wait_with_output().unwrap();
    let signalled_at = signalled_at.unwrap_or_else(|| panic!("never saw {when:?} on stderr:\n{seen}"));
    let run = RunOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: seen,
        reports: sandbox.reports(),
    };
    (run, signalled_at.elapsed())
}

/// The demo schema (scenarios/demo migrations 0001 and 0002) with five rows
/// per table, dumped once per test binary: every statement on it takes about
/// a millisecond.
pub fn tiny_demo_dump() -> &'static PathBuf {
    static TINY: OnceLock<PathBuf> = OnceLock::new();
    TINY.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cancel = CancellationToken::new();
            let dir = tempfile::Builder::new().prefix("rht-tiny-").tempdir_in("/tmp").unwrap().keep();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            let bin = find_binaries(None, &cancel).await.unwrap();
            let cluster = LocalCluster::start(bin.clone(), &cancel).await.unwrap();
            let conn = cluster.conn().clone();
            let psql = |args: Vec<String>| {
                ChildCommand::new(bin.tool("psql"))
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
                    .args(args)
                    .envs(conn.libpq_env(&conn.dbname, "fixture"))
                    .run(&cancel)
            };
            psql(vec!["-c".into(), "CREATE ROLE app NOLOGIN; CREATE ROLE readonly NOLOGIN;".into()]).await.unwrap();
            for file in ["0001_create_schema.sql", "0002_add_events.sql"] {
                psql(vec!["-f".into(), format!("{REPO}/scenarios/demo/migrations/{file}")]).await.unwrap();
            }
            psql(vec!["-c".into(), TINY_ROWS.into()]).await.expect("tiny rows load");
            let dump = dir.join("tiny.dump");
            ChildCommand::new(bin.tool("pg_dump"))
                .args(["-Fc", "-f"])
                .arg(&dump)
                .envs(conn.libpq_env(&conn.dbname, "fixture"))
                .run(&cancel)
                .await
                .unwrap();
            cluster.stop().await.unwrap();
            dump
        })
    })
}

const TINY_ROWS: &str = "
INSERT INTO public.users (email, full_name, country) SELECT 'u' || g || '@x.test', 'User ' || g, 'DE' FROM generate_series(1, 5) g;
INSERT INTO public.coupons (code, percent_off) SELECT 'C' || g, 10 FROM generate_series(1, 5) g;
INSERT INTO public.orders (user_id, status) SELECT g, 'paid' FROM generate_series(1, 5) g;
INSERT INTO public.order_items (order_id, sku, quantity, unit_price_cents) SELECT g, 'sku' || g, 1, 100 FROM generate_series(1, 5) g;
INSERT INTO public.events (user_id, kind) SELECT g, 'login' FROM generate_series(1, 5) g;
";

/// (relation, mode) pairs, as pg_locks and the report spell them.
pub type LockSet = std::collections::BTreeSet<(String, String)>;

/// Ground truth from the server: restores `dump` into a cluster of its own
/// and applies the forms in order, each in a transaction: after the form,
/// before COMMIT, it reads the relation locks its session holds from
/// pg_locks, naming dropped relations from pg_class as it was before the form.
pub fn server_lock_truth(dump: &Path, forms: &[&str]) -> Vec<LockSet> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cancel = CancellationToken::new();
        let bin = find_binaries(None, &cancel).await.unwrap();
        let cluster = LocalCluster::start(bin.clone(), &cancel).await.unwrap();
        let conn = cluster.conn().clone();
        ChildCommand::new(bin.tool("pg_restore"))
            .args(["--no-owner", "--no-acl", "-j", "2", "-d", "rehearse"])
            .arg(dump)
            .envs(conn.libpq_env(&conn.dbname, "truth"))
            .deadline(Duration::from_secs(300))
            .run(&cancel)
            .await
            .expect("ground-truth restore");
        let client = rehearse::db::connect(&conn, &conn.dbname, "truth").await.unwrap();
        let names = "SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname) FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg_toast%'";
        let mut out = Vec::new();
        for form in forms {
            let before: std::collections::HashMap<i64, String> =
                client.query(names, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
            client.batch_execute("BEGIN").await.unwrap();
            client.batch_execute(form).await.unwrap_or_else(|e| panic!("{form}: {e:?}"));
            let now: std::collections::HashMap<i64, String> =
                client.query(names, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
            let rows = client
                .query(
                    "SELECT l.relation::int8, l.mode FROM pg_locks l
                      WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
                        AND l.relation::int8 >= 16384",
                    &[],
                )
                .await
                .unwrap();
            let mut set = LockSet::new();
            for r in rows {
                let oid: i64 = r.get(0);
                if let Some(name) = now.get(&oid).or_else(|| before.get(&oid)) {
                    set.insert((name.clone(), r.get(1)));
                }
            }
            out.push(set);
            client.batch_execute("COMMIT").await.unwrap();
        }
        cluster.stop().await.unwrap();
        out
    })
}

/// One `<testcase>` of junit.xml, as a CI system reads it.
#[derive(Debug)]
pub struct JunitCase {
    pub suite: String,
    pub name: String,
    /// (type, message, body) of its `<failure>`.
    pub failure: Option<(String, String, String)>,
    pub skipped: bool,
    pub out: String,
}

/// Parses junit.xml with a real XML parser; panics when it is not well-formed.
pub fn junit_cases(xml: &str) -> Vec<JunitCase> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("junit.xml does not parse: {e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let mut cases = Vec::new();
    for suite in root.children().filter(|n| n.has_tag_name("testsuite")) {
        for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
            let child = |tag: &str| case.children().find(|n| n.has_tag_name(tag));
            cases.push(JunitCase {
                suite: suite.attribute("name").unwrap_or_default().to_string(),
                name: case.attribute("name").unwrap_or_default().to_string(),
                failure: child("failure").map(|f| {
                    (
                        f.attribute("type").unwrap_or_default().to_string(),
                        f.attribute("message").unwrap_or_default().to_string(),
                        f.text().unwrap_or_default().to_string(),
                    )
                }),
                skipped: child("skipped").is_some(),
                out: child("system-out").and_then(|n| n.text()).unwrap_or_default().to_string(),
            });
        }
    }
    cases
}

/// The interpreter of the venv `make deps` creates, with Alembic from PyPI.
pub fn venv_python() -> String {
    let python = format!("{REPO}/.venv/bin/python");
    assert!(Path::new(&python).exists(), "{python} is missing: run `make deps` (it creates the venv with Alembic)");
    python
}

/// The image the docker tests run: REHEARSE_TEST_IMAGE, else the one
/// `make test` builds (scripts/docker-test-image.sh).
pub fn test_image() -> String {
    let image = std::env::var("REHEARSE_TEST_IMAGE").unwrap_or_else(|_| "rehearse-postgres:15".into());
    let present = Command::new("docker").args(["image", "inspect", &image]).output().is_ok_and(|o| o.status.success());
    assert!(
        present,
        "docker image {image} is not here (or Docker is not running): run `make test`, which runs \
         scripts/docker-test-image.sh, or set REHEARSE_TEST_IMAGE to a postgres image this machine has"
    );
    image
}

/// Docker tests run one at a time: the machine has two cores, and "no
/// container labelled rehearse is left" is then a statement about the test alone.
pub fn docker_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Containers labelled `rehearse`, running or not.
pub fn rehearse_containers() -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "--all", "--filter", "label=rehearse", "--format", "{{.ID}} {{.Status}} {{.Labels}}"])
        .output()
        .expect("docker ps runs");
    assert!(out.status.success(), "docker ps failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

pub fn assert_no_containers() {
    let left = rehearse_containers();
    assert!(left.is_empty(), "containers labelled rehearse were left: {left:?}");
}

/// Per migration, the (table, mode) pairs read from pg_locks right after
/// each statement: exact, unlike what the sampler happens to catch.
pub fn table_lock_modes(report: &Report) -> Vec<LockSet> {
    report
        .migrations
        .iter()
        .map(|m| {
            m.locks
                .iter()
                .filter(|l| l.kind == "table" && l.source.iter().any(|s| s == "statement"))
                .map(|l| (l.relation.clone(), l.mode.clone()))
                .collect()
        })
        .collect()
}

/// The container id from a `--keep` run's "docker rm -f -v <id>" line.
pub fn kept_container(stderr: &str) -> String {
    let remove = stderr.lines().find(|l| l.contains("docker rm -f -v")).expect("how to remove the kept container");
    remove.split_whitespace().last().unwrap().to_string()
}

pub fn docker_out(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The local PostgreSQL client binaries (psql), as `make deps` installs them.
pub fn pg_bin_dir() -> String {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql").unwrap().flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.last().unwrap().join("bin").display().to_string()
}
