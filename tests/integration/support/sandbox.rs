//! A private directory per test, the `rehearse` binary run in it, and what
//! a run left: its exit code, output and report files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rehearse::error::ErrorKind;
use rehearse::report::Report;

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
        // for itself; with it, the cache lives in the sandbox. `drift` takes `run`'s arguments.
        let run = matches!(args.first(), Some(&"run") | Some(&"drift"));
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

    /// Starts `rehearse ARGS` in the background: stdout discarded, stderr piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("rehearse starts")
    }

    /// Runs `rehearse ARGS` on bad input: exit 3, each of `expected` on
    /// stderr, no panic or backtrace, nothing left behind. Returns the run
    /// for what else the case says (whether a report was written, say).
    pub fn rehearse_bad_input(&self, args: &[&str], expected: &[&str]) -> RunOutput {
        let out = self.rehearse(args);
        out.assert_code(3);
        for e in expected {
            assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
        }
        assert!(!out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"), "{}", out.stderr);
        self.assert_no_leaks();
        out
    }

    /// The cluster dir a `--keep` local run left, and a connection to
    /// `dbname` on it as rehearse's superuser.
    pub fn kept_copy(&self, dbname: &str) -> (PathBuf, rehearse::sys::db::ConnInfo) {
        let cluster =
            std::fs::read_dir(self.path().join("tmp")).unwrap().flatten().next().expect("the kept copy").path();
        let pgpass = std::fs::read_to_string(cluster.join("pgpass")).unwrap();
        let conf = std::fs::read_to_string(cluster.join("data/rehearse.conf")).unwrap();
        let port = conf.lines().find_map(|l| l.strip_prefix("port = ")).unwrap().parse().unwrap();
        let conn = rehearse::sys::db::ConnInfo {
            host: cluster.display().to_string(),
            port,
            user: "rehearse".into(),
            password: rehearse::sys::db::Secret::from_string(pgpass.trim().rsplit(':').next().unwrap().to_string()),
            dbname: dbname.into(),
            admin_dbname: dbname.into(),
            tls: Default::default(),
            password_command: None,
        };
        (cluster, conn)
    }

    /// Stops and removes the copy `--keep` left, with the command the run printed; nothing may be left.
    pub fn remove_kept(&self, out: &RunOutput) {
        let stop = out.stderr.lines().find(|l| l.contains("stop && rm -rf")).expect("stop instructions");
        assert!(Command::new("sh").args(["-c", stop.trim()]).status().unwrap().success());
        self.assert_no_leaks();
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

/// Pid and command line of each live process whose command line or
/// environment mentions `path`. A run's children inherit its TMPDIR (the
/// sandbox's), so this finds whatever a run left, even a grandchild whose
/// command line says nothing of the sandbox (a migration tool's `sleep`).
pub fn processes_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let read = |file: &str| {
            std::fs::read(entry.path().join(file)).map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        };
        let Ok(cmdline) = read("cmdline") else { continue };
        // Unreadable for another user's process when the tests do not run as root.
        let environ = read("environ").unwrap_or_default();
        if cmdline.contains(&needle) || environ.contains(&needle) {
            found.push(format!("{} {cmdline}", entry.file_name().to_string_lossy()));
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

    /// The run stopped before it started anything: nothing on stdout, no report.
    pub fn assert_nothing_ran(&self) -> &Self {
        assert!(self.stdout.is_empty(), "nothing on stdout, got:\n{}", self.stdout);
        assert!(!self.reports.exists(), "nothing ran, so no report; stderr:\n{}", self.stderr);
        self
    }

    /// The demo's verdict (scenarios/demo.yaml and its variants): every
    /// migration applied, and the only breaches production's
    /// statement_timeout (30s for its migration role, in
    /// snapshots/demo-prod-stats.json) reached at 50× by the rewrites and the
    /// backfill; how many depends on this machine's speed, so exit 0 with
    /// none and exit 1 with some.
    pub fn assert_demo_verdict(&self) -> Report {
        use rehearse::report::{BudgetKey, MigrationStatus, RunStatus};
        let report = self.report();
        assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied), "{}", self.stdout);
        let breaches: Vec<_> = report.migrations.iter().flat_map(|m| &m.breaches).collect();
        assert!(breaches.iter().all(|b| b.budget == BudgetKey::StatementTimeout), "{breaches:?}");
        match breaches.is_empty() {
            true => assert_eq!((self.code, report.status), (0, RunStatus::Passed), "{}", self.stderr),
            false => assert_eq!((self.code, report.status), (1, RunStatus::BudgetExceeded), "{}", self.stderr),
        }
        report
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// The run stopped on an error of `kind`: the report it wrote says so
    /// (`error_kind`), and so does the exit code.
    pub fn assert_stopped_by(&self, kind: ErrorKind) -> &Self {
        let report = self.report();
        assert_eq!(report.error_kind, Some(kind), "error_kind; error: {:?}\nstderr:\n{}", report.error, self.stderr);
        self.assert_code(kind.exit_code())
    }
}
