//! The drift check (`drift:`, `rehearse drift`) against real servers and
//! real Alembic: production dumps made here by a real server — a history
//! applied then changed by hand, stamped past a revision it never ran, built
//! by an ORM's `create_all` then `alembic stamp head`, or one that needed
//! production's data to run — rehearsed, the history built from empty and
//! compared. Each case asserts exactly the findings its production makes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rehearse::backend::local::{find_binaries, LocalCluster, PgBin};
use rehearse::pg::DriftKind;
use rehearse::report::{DriftCause, DriftFinding, DriftReport, MigrationStatus, Report, RunStatus};
use rehearse::sys::db::ConnInfo;
use rehearse::sys::process::ChildCommand;
use tokio_util::sync::CancellationToken;

use crate::support::{junit_cases, pg_bin_dir, venv_python, JunitCase, RunOutput, Sandbox, REPO};

fn fixture(name: &str) -> PathBuf {
    Path::new(REPO).join("tests/fixtures").join(name)
}

// ---------------------------------------------------------------- production

/// `tests/fixtures/drift_sql/0003_ticket_age.sql` as edited after production
/// ran it, and the body production ran.
const EDITED_BODY: &str = "date_trunc('second', now() - created)";
const PRODUCTION_BODY: &str = "now() - created";

/// The SQL history production applied (0001..0004; 0005 is the release).
const APPLIED: [&str; 4] =
    ["0001_ticket_state.sql", "0002_tickets.sql", "0003_ticket_age.sql", "0004_open_tickets.sql"];

/// Changed by hand in production, outside any migration: with 0003's edited
/// body, the four differences the check must find, and nothing else.
const BY_HAND: &str = "
-- A DBA's index, added during an incident and never written as a migration.
CREATE INDEX tickets_title_by_hand_idx ON public.tickets (title);
-- A hot fix: new tickets start at priority 4, in production only.
ALTER TABLE public.tickets ALTER COLUMN priority SET DEFAULT 4;
-- A state a support tool needed, added by hand.
ALTER TYPE public.ticket_state ADD VALUE 'escalated';
";

/// rehearse's tracking table as rehearse records applied files: `version`
/// is the file's number without leading zeros.
fn tracking(files: &[&str]) -> String {
    let rows: Vec<String> =
        files.iter().map(|f| format!("('{}', '{f}', 12)", f[..4].parse::<u32>().expect("a numbered file"))).collect();
    format!(
        "CREATE TABLE public.rehearse_schema_migrations (
    version text PRIMARY KEY, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(), duration_ms bigint
);
INSERT INTO public.rehearse_schema_migrations (version, name, duration_ms) VALUES {};
",
        rows.join(", ")
    )
}

/// Production of `drift_sql`: the history as it was when production ran
/// it, run as the app's role (which owns the tracking table, so the history
/// is built as it too), some tickets, then the changes by hand.
fn four_changes_sql() -> String {
    // Production's database is the app's (PostgreSQL 15: CREATE in public is the database owner's).
    let mut sql = String::from("CREATE ROLE app NOLOGIN;\nALTER DATABASE four_changes OWNER TO app;\nSET ROLE app;\n");
    for file in APPLIED {
        let text = std::fs::read_to_string(fixture("drift_sql").join(file)).unwrap();
        if file == "0003_ticket_age.sql" {
            assert!(text.contains(EDITED_BODY), "{file} has the edited body");
            sql.push_str(&text.replace(EDITED_BODY, PRODUCTION_BODY));
        } else {
            sql.push_str(&text);
        }
    }
    sql.push_str(&tracking(&APPLIED));
    sql.push_str("INSERT INTO public.tickets (title, priority) SELECT 'ticket ' || g, 1 + g % 5 FROM generate_series(1, 200) g;\n");
    sql.push_str("RESET ROLE;\n");
    sql.push_str(BY_HAND);
    sql
}

/// A history whose second file needs a row production had when it ran;
/// the third is the release.
const UNBUILDABLE: [(&str, &str); 3] = [
    ("0001_settings.sql", "CREATE TABLE public.settings (key text PRIMARY KEY, value text NOT NULL);\n"),
    (
        "0002_require_settings.sql",
        "-- Production had its settings row when this ran; an empty database has none.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM public.settings) THEN RAISE EXCEPTION 'needs a row in public.settings'; END IF;
END $$;
ALTER TABLE public.settings ADD COLUMN updated_at timestamptz;
",
    ),
    ("0003_settings_note.sql", "ALTER TABLE public.settings ADD COLUMN note text;\n"),
];

fn unbuildable_sql() -> String {
    format!(
        "{}INSERT INTO public.settings VALUES ('currency', 'EUR');\n{}{}",
        UNBUILDABLE[0].1,
        UNBUILDABLE[1].1,
        tracking(&[UNBUILDABLE[0].0, UNBUILDABLE[1].0])
    )
}

/// The production dumps of this module, made once per test binary by one
/// real server (a database each), dumped with pg_dump.
struct DriftDumps {
    dir: PathBuf,
}

impl DriftDumps {
    /// `four_changes`, `unbuildable`, `stamped_past`, `orm_agree`, `orm_extra_index`.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.dump"))
    }
}

fn drift_dumps() -> &'static DriftDumps {
    static DUMPS: OnceLock<DriftDumps> = OnceLock::new();
    DUMPS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(make_dumps())
    })
}

async fn make_dumps() -> DriftDumps {
    let cancel = CancellationToken::new();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures-drift");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = find_binaries(None, &cancel).await.expect("PostgreSQL binaries (run `make deps`)");
    let cluster = LocalCluster::start(bin.clone(), &cancel).await.expect("the fixture cluster starts");
    let server = FixtureServer { bin, conn: cluster.conn().clone(), dir: dir.clone(), cancel };
    server.sql("four_changes", &four_changes_sql()).await;
    server.sql("unbuildable", &unbuildable_sql()).await;
    // Alembic ran r1 and r2; then the version table was stamped to r3, which never ran.
    let env = server.database("stamped_past").await;
    server.python(&env, &["-m", "alembic", "-c", &alembic_ini("drift_alembic"), "upgrade", "r2_books_published"]).await;
    let stamp = "INSERT INTO public.authors (name) VALUES ('Ada');
UPDATE public.alembic_version SET version_num = 'r3_reviews';";
    server.psql(&env, "stamped_past", stamp).await;
    server.dump(&env, "stamped_past").await;
    // An app that never ran its migrations: create_all, then `alembic stamp head`.
    for (name, variant) in [("orm_agree", ""), ("orm_extra_index", "extra_index")] {
        let mut env = server.database(name).await;
        env.push(("DRIFT_ORM_VARIANT".into(), variant.into()));
        let script = fixture("drift_orm").join("create_all.py");
        server.python(&env, &[script.to_str().unwrap()]).await;
        server.dump(&env, name).await;
    }
    cluster.stop().await.expect("the fixture cluster stops");
    DriftDumps { dir }
}

fn alembic_ini(project: &str) -> String {
    fixture(project).join("alembic.ini").display().to_string()
}

/// The fixture cluster: a database per production, loaded and dumped.
struct FixtureServer {
    bin: PgBin,
    conn: ConnInfo,
    dir: PathBuf,
    cancel: CancellationToken,
}

impl FixtureServer {
    /// A fresh database `name`; libpq's environment for it.
    async fn database(&self, name: &str) -> Vec<(String, String)> {
        let admin = self.conn.libpq_env(&self.conn.dbname, "fixture");
        self.psql(&admin, &format!("create_{name}"), &format!("CREATE DATABASE {name}")).await;
        self.conn.libpq_env(name, "fixture")
    }

    /// Database `name` loaded with `sql`, dumped.
    async fn sql(&self, name: &str, sql: &str) {
        let env = self.database(name).await;
        self.psql(&env, name, sql).await;
        self.dump(&env, name).await;
    }

    /// Runs `sql` from a file (each statement on its own, as psql -f does:
    /// `ALTER TYPE ... ADD VALUE` outside a transaction).
    async fn psql(&self, env: &[(String, String)], label: &str, sql: &str) {
        let file = self.dir.join(format!("{label}.sql"));
        std::fs::write(&file, sql).unwrap();
        ChildCommand::new(self.bin.tool("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&file)
            .envs(env.to_vec())
            .run(&self.cancel)
            .await
            .unwrap_or_else(|e| panic!("{label} does not load: {e}"));
    }

    async fn dump(&self, env: &[(String, String)], name: &str) {
        ChildCommand::new(self.bin.tool("pg_dump"))
            .args(["-Fc", "-f"])
            .arg(self.dir.join(format!("{name}.dump")))
            .envs(env.to_vec())
            .run(&self.cancel)
            .await
            .unwrap_or_else(|e| panic!("pg_dump of {name}: {e}"));
    }

    /// The venv's python (Alembic, SQLAlchemy, psycopg), DATABASE_URL
    /// naming the database of `env` through libpq's variables.
    async fn python(&self, env: &[(String, String)], args: &[&str]) {
        ChildCommand::new(venv_python())
            .args(args)
            .envs(env.to_vec())
            .env("DATABASE_URL", "postgresql+psycopg://")
            .cwd(&self.dir)
            .run(&self.cancel)
            .await
            .unwrap_or_else(|e| panic!("python {args:?}: {e}"));
    }
}

// ---------------------------------------------------------------- scenarios and reports

const FORMATS: &str = "report:\n  formats: [markdown, json, junit]\n";

/// A scenario rehearsing the SQL folder `dir` on `dump`, plus `extra` YAML.
fn sql_scenario(sandbox: &Sandbox, dump: &Path, dir: &Path, extra: &str) -> String {
    let text = format!(
        "name: drift-test\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: sql\n  dir: {}\n{extra}{FORMATS}",
        dump.display(),
        dir.display()
    );
    sandbox.write("s.yaml", &text).display().to_string()
}

/// A scenario rehearsing the Alembic project `project` to head on `dump`.
fn alembic_scenario(sandbox: &Sandbox, dump: &Path, project: &Path, extra: &str) -> String {
    let text = format!(
        "name: drift-test\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  dir: {}\n  target: head\n  python: {}\n{extra}{FORMATS}",
        dump.display(),
        project.display(),
        venv_python()
    );
    sandbox.write("s.yaml", &text).display().to_string()
}

/// The drift report of a run that made one.
fn drift_of(out: &RunOutput) -> DriftReport {
    let report = out.report();
    report.drift.unwrap_or_else(|| panic!("no drift report; stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr))
}

/// Every pending migration applied: the drift check had an end state to compare.
fn assert_all_applied(report: &Report, ids: &[&str]) {
    let got: Vec<(&str, MigrationStatus)> = report.migrations.iter().map(|m| (m.id.as_str(), m.status)).collect();
    let want: Vec<(&str, MigrationStatus)> = ids.iter().map(|id| (*id, MigrationStatus::Applied)).collect();
    assert_eq!(got, want, "{:?}", report.migrations.iter().map(|m| &m.error).collect::<Vec<_>>());
}

/// Production matches the history: objects were compared, none differ.
fn assert_no_drift(d: &DriftReport) {
    assert_eq!(d.error, None, "the history builds from empty");
    assert!(d.findings.is_empty(), "no false positives: {:#?}", d.findings);
    assert!(d.checked.values().sum::<usize>() > 0, "objects were compared: {:?}", d.checked);
}

/// The one finding of `kind` whose object starts with `object`.
fn finding<'a>(d: &'a DriftReport, kind: DriftKind, object: &str) -> &'a DriftFinding {
    let found: Vec<&DriftFinding> =
        d.findings.iter().filter(|f| f.kind == kind && f.object.starts_with(object)).collect();
    assert_eq!(found.len(), 1, "one {kind} {object} in {:#?}", d.findings);
    found[0]
}

fn drift_case(out: &RunOutput) -> JunitCase {
    let cases = junit_cases(&out.junit());
    cases.into_iter().find(|c| c.name == "drift").expect("a JUnit case named drift")
}

/// The four differences of `four_changes` (before `drift.ignore`), each
/// with its cause, definitions and the file that made it in the history.
fn assert_four_changes(d: &DriftReport) {
    assert_eq!(d.error, None, "the history builds from empty");
    assert_eq!(d.findings.len(), 4, "{:#?}", d.findings);
    let index = finding(d, DriftKind::Index, "public.tickets_title_by_hand_idx");
    assert_eq!(
        (index.cause, index.history.as_deref(), index.revision.as_deref()),
        (DriftCause::OnlyInProduction, None, None)
    );
    assert!(index.production.as_deref().unwrap_or_default().contains("(title)"), "{index:?}");
    let column = finding(d, DriftKind::Column, "public.tickets.priority");
    assert_eq!((column.cause, column.revision.as_deref()), (DriftCause::Different, Some("0002_tickets")));
    assert!(column.production.as_deref().unwrap_or_default().contains('4'), "{column:?}");
    assert!(column.history.as_deref().unwrap_or_default().contains('3'), "{column:?}");
    let state = finding(d, DriftKind::Enum, "public.ticket_state");
    assert_eq!((state.cause, state.revision.as_deref()), (DriftCause::Different, Some("0001_ticket_state")));
    assert!(state.production.as_deref().unwrap_or_default().contains("escalated"), "{state:?}");
    assert!(!state.history.as_deref().unwrap_or_default().contains("escalated"), "{state:?}");
    let age = finding(d, DriftKind::Function, "public.ticket_age");
    assert_eq!((age.cause, age.revision.as_deref()), (DriftCause::Different, Some("0003_ticket_age")));
    // A function's definition carries its body as an md5: the two differ there.
    let (prod, hist) = (age.production.as_deref().unwrap_or_default(), age.history.as_deref().unwrap_or_default());
    assert!(prod.contains("body md5") && hist.contains("body md5") && prod != hist, "{age:?}");
}

// ---------------------------------------------------------------- 1. no false positives

/// The demo's production, rehearsed with its SQL folder and then with its
/// Alembic tree (whose a1/a2 run the folder's 0001/0002): both histories
/// build production's schema from empty, so neither finds anything.
#[test]
fn the_demo_dump_matches_both_its_sql_and_its_alembic_history() {
    let sandbox = Sandbox::new();
    let dump = Path::new(REPO).join("snapshots/demo.dump");
    let folder = Path::new(REPO).join("scenarios/demo/migrations");
    let scenario = sql_scenario(&sandbox, &dump, &folder, "drift: true\n");
    let out = sandbox.rehearse(&["run", &scenario, "--use-cache", "--no-observe"]);
    out.assert_code(0);
    assert_all_applied(&out.report(), &crate::support::DEMO_PENDING);
    let d = drift_of(&out);
    assert_no_drift(&d);
    assert_eq!(d.role.as_deref(), Some("app"), "built as the owner of rehearse_schema_migrations in the dump");
    assert_eq!(d.database, "rehearse_drift");
    assert!(out.markdown().contains("Drift check: production plus this release matches what the history builds"));

    // The second restore comes from the snapshot cache the first one filled.
    let project = Path::new(REPO).join("scenarios/alembic-demo");
    let scenario = alembic_scenario(&sandbox, &dump, &project, "drift: true\n");
    let out = sandbox.rehearse(&["run", &scenario, "--use-cache", "--no-observe"]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.migrations.len(), 7, "a3..a8 with the branch and its merge");
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    let d = drift_of(&out);
    assert_no_drift(&d);
    assert_eq!(d.role.as_deref(), Some("app"), "built as the owner of alembic_version in the dump");
    sandbox.assert_no_leaks();
}

/// An app whose production was made by `create_all` then `alembic stamp
/// head`: when the models and the revisions agree there is no drift; the
/// models one index ahead of the revisions is exactly that one finding.
#[test]
fn an_orm_create_all_then_stamp_head_drifts_only_where_the_models_differ() {
    let sandbox = Sandbox::new();
    let project = fixture("drift_orm");
    let scenario = alembic_scenario(&sandbox, &drift_dumps().path("orm_agree"), &project, "drift: true\n");
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(0);
    assert_all_applied(&out.report(), &[]);
    assert_no_drift(&drift_of(&out));

    let scenario = alembic_scenario(&sandbox, &drift_dumps().path("orm_extra_index"), &project, "drift: true\n");
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(0);
    let d = drift_of(&out);
    assert_eq!(d.findings.len(), 1, "{:#?}", d.findings);
    let index = finding(&d, DriftKind::Index, "public.accounts_plan_idx");
    assert_eq!((index.cause, index.revision.as_deref()), (DriftCause::OnlyInProduction, None));
    sandbox.assert_no_leaks();
}

// ---------------------------------------------------------------- 2. four changes out of band

#[test]
fn four_out_of_band_changes_are_exactly_four_findings_grouped_by_cause() {
    let sandbox = Sandbox::new();
    let scenario = sql_scenario(&sandbox, &drift_dumps().path("four_changes"), &fixture("drift_sql"), "drift: true\n");
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Passed, "drift fails nothing without budgets.fail_on_drift");
    assert_all_applied(&report, &["0005_tickets_assignee"]);
    let d = drift_of(&out);
    assert_eq!(d.role.as_deref(), Some("app"), "built as the owner of rehearse_schema_migrations in the dump");
    assert_four_changes(&d);
    assert!(d.checked.values().sum::<usize>() > 4, "{:?}", d.checked);

    let md = out.markdown();
    let section = &md[md.find("## Drift").unwrap_or_else(|| panic!("a Drift section:\n{md}"))..];
    let only = section.find("### Only in production: changed out of band (1)").expect("only in production, first");
    let different = section.find("### Defined differently: an applied migration edited, or a manual fix (3)").unwrap();
    assert!(only < different, "{section}");
    assert!(!section.contains("### Only in the history"), "{section}");
    let index = section.find("`public.tickets_title_by_hand_idx`").unwrap();
    assert!(only < index && index < different, "the index under its cause: {section}");
    assert!(section[different..].contains("`0003_ticket_age`"), "{section}");
    assert!(
        md.contains(
            "Drift check: 4 differences from what the history builds from empty (1 only in production, 3 different)"
        ),
        "{md}"
    );

    let case = drift_case(&out);
    assert!(case.failure.is_none(), "findings fail nothing without fail_on_drift: {case:?}");
    assert!(
        case.out.contains("4 differences") && case.out.contains("public.tickets_title_by_hand_idx"),
        "{}",
        case.out
    );
    sandbox.assert_no_leaks();
}

// ---------------------------------------------------------------- 3. stamped past a revision

/// Production's alembic_version says r3_reviews, but r3 never ran there:
/// what r3 makes is in the history only, credited to r3.
#[test]
fn a_revision_stamped_but_never_run_is_only_in_the_history_credited_to_it() {
    let sandbox = Sandbox::new();
    let scenario =
        alembic_scenario(&sandbox, &drift_dumps().path("stamped_past"), &fixture("drift_alembic"), "drift: true\n");
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(0);
    assert_all_applied(&out.report(), &["r4_books_title_idx"]);
    let d = drift_of(&out);
    assert_eq!(d.error, None);
    assert_eq!(d.findings.len(), 1, "the table, its columns, keys and sequence folded into it: {:#?}", d.findings);
    let table = finding(&d, DriftKind::Table, "public.reviews");
    assert_eq!(table.production, None);
    for f in &d.findings {
        assert_eq!((f.cause, f.revision.as_deref()), (DriftCause::OnlyInHistory, Some("r3_reviews")), "{f:#?}");
        assert!(f.object.contains("reviews"), "only r3's objects: {f:#?}");
    }
    let md = out.markdown();
    assert!(md.contains("### Only in the history: stamped but never run, or dropped out of band"), "{md}");
    sandbox.assert_no_leaks();
}

// ---------------------------------------------------------------- 4. drift.ignore

#[test]
fn drift_ignore_leaves_out_what_it_names_and_echoes_the_patterns() {
    let sandbox = Sandbox::new();
    let drift = "drift:\n  ignore: [\"index:public.*_by_hand_idx\", \"enum\"]\n";
    let scenario = sql_scenario(&sandbox, &drift_dumps().path("four_changes"), &fixture("drift_sql"), drift);
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(0);
    let d = drift_of(&out);
    assert_eq!(d.ignored, ["index:public.*_by_hand_idx", "enum"]);
    let mut left: Vec<DriftKind> = d.findings.iter().map(|f| f.kind).collect();
    left.sort();
    assert_eq!(left, [DriftKind::Column, DriftKind::Function], "{:#?}", d.findings);
    assert!(out.markdown().contains("Left out (`drift.ignore`): `index:public.*_by_hand_idx`, `enum`."));
    sandbox.assert_no_leaks();
}

#[test]
fn an_unknown_kind_or_a_bad_pattern_in_drift_ignore_is_refused_before_anything_starts() {
    let sandbox = Sandbox::new();
    let cases: [(&str, &[&str]); 2] = [
        ("colum:x", &["drift.ignore", "unknown kind \"colum\""]),
        ("index:public.[oops", &["drift.ignore", "bad pattern"]),
    ];
    for (pattern, expected) in cases {
        let drift = format!("drift:\n  ignore: [\"{pattern}\"]\n");
        let scenario = sql_scenario(&sandbox, &drift_dumps().path("four_changes"), &fixture("drift_sql"), &drift);
        sandbox.rehearse_bad_input(&["run", &scenario], expected).assert_nothing_ran();
    }
}

// ---------------------------------------------------------------- 5. a history that needs data

/// The release is rehearsed and stands; the drift report says which file
/// could not run on an empty database, and why; nothing is compared.
#[test]
fn a_history_that_cannot_be_built_from_empty_is_reported_and_the_rehearsal_stands() {
    let sandbox = Sandbox::new();
    let folder = sandbox.migrations(&UNBUILDABLE);
    let scenario = sql_scenario(&sandbox, &drift_dumps().path("unbuildable"), &folder, "drift: true\n");
    let out = sandbox.rehearse(&["run", &scenario]);
    // Without fail_on_drift, a history that cannot be built is no breach.
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Passed);
    assert!(report.breaches.is_empty(), "{:?}", report.budget_breaches);
    assert_all_applied(&report, &["0003_settings_note"]);
    let d = report.drift.as_ref().expect("a drift report");
    let error = d.error.as_deref().expect("why the history could not be built");
    assert!(error.contains("0002_require_settings") && error.contains("needs a row in public.settings"), "{error}");
    assert!(d.findings.is_empty() && d.checked.is_empty(), "{d:#?}");
    let md = out.markdown();
    assert!(md.contains("The history could not be built, so nothing was compared"), "{md}");
    assert!(md.contains("Drift check: the history could not be built from empty to compare with"), "{md}");
    let case = drift_case(&out);
    let (kind, _, body) = case.failure.as_ref().expect("the drift case fails");
    assert_eq!(kind, "drift_build_failed");
    assert!(body.contains("needs a row in public.settings"), "{body}");

    // Under fail_on_drift the gate fails closed: drift that could not be checked is a breach.
    let gated = sql_scenario(
        &sandbox,
        &drift_dumps().path("unbuildable"),
        &folder,
        "drift: true\nbudgets:\n  fail_on_drift: true\n",
    );
    let out = sandbox.rehearse(&["run", &gated]);
    out.assert_code(1);
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    assert!(
        report.budget_breaches.iter().any(|b| b.contains("fail_on_drift: the history could not be built")),
        "{:?}",
        report.budget_breaches
    );
    sandbox.assert_no_leaks();
}

/// With a pending migration that failed there is no end state to compare:
/// no drift report, the run fails as without drift.
#[test]
fn the_drift_check_is_skipped_when_the_release_did_not_apply() {
    let sandbox = Sandbox::new();
    let folder = sandbox.migrations(&UNBUILDABLE[..2]);
    std::fs::write(folder.join("0003_broken.sql"), "ALTER TABLE public.missing ADD COLUMN x int;\n").unwrap();
    let scenario = sql_scenario(&sandbox, &drift_dumps().path("unbuildable"), &folder, "drift: true\n");
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(2);
    let report = out.report();
    assert_eq!(report.migrations[0].status, MigrationStatus::Failed);
    assert_eq!(report.drift, None);
    assert!(out.stderr.contains("drift check skipped") || out.stdout.contains("drift check skipped"), "{}", out.stderr);
    assert!(junit_cases(&out.junit()).iter().all(|c| c.name != "drift"));
    sandbox.assert_no_leaks();
}

// ---------------------------------------------------------------- 6. fail_on_drift

#[test]
fn fail_on_drift_makes_findings_a_run_wide_breach() {
    let sandbox = Sandbox::new();
    let extra = "drift: true\nbudgets:\n  fail_on_drift: true\n";
    let scenario = sql_scenario(&sandbox, &drift_dumps().path("four_changes"), &fixture("drift_sql"), extra);
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(1);
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    assert_all_applied(&report, &["0005_tickets_assignee"]);
    let breaches: Vec<(&str, u64)> = report.breaches.iter().map(|b| (b.budget.as_str(), b.figure)).collect();
    assert_eq!(breaches, [("fail_on_drift", 4)]);
    assert!(report.budget_breaches[0].starts_with("fail_on_drift: 4 differences"), "{:?}", report.budget_breaches);
    let case = drift_case(&out);
    let (kind, _, body) = case.failure.as_ref().expect("the drift case fails");
    assert_eq!(kind, "drift");
    assert!(body.contains("public.tickets_title_by_hand_idx"), "{body}");
    sandbox.assert_no_leaks();
}

#[test]
fn fail_on_drift_without_drift_is_a_plan_error() {
    let sandbox = Sandbox::new();
    let scenario = sql_scenario(
        &sandbox,
        &drift_dumps().path("four_changes"),
        &fixture("drift_sql"),
        "budgets:\n  fail_on_drift: true\n",
    );
    sandbox
        .rehearse_bad_input(&["run", &scenario], &["budgets.fail_on_drift", "drift: true", "rehearse drift"])
        .assert_nothing_ran();
}

// ---------------------------------------------------------------- 7. a command tool needs `build`

#[test]
fn a_command_tool_without_migrations_build_is_refused_when_drift_is_on() {
    let sandbox = Sandbox::new();
    let text = format!(
        "dump: {}\nmigrations:\n  tool: command\n  dir: {REPO}/tests/fixtures\n  list: ./runner.sh list\n  apply: ./runner.sh apply {{rev}} '{{url}}'\ndrift: true\n",
        drift_dumps().path("four_changes").display()
    );
    let scenario = sandbox.write("command.yaml", &text).display().to_string();
    sandbox
        .rehearse_bad_input(&["run", &scenario], &["migrations.build", "command tool", "{url}"])
        .assert_nothing_ran();
}

/// `migrations.build` is the history from empty for a command tool: run
/// once, as `drift.role` (psql honours `PGOPTIONS=-c role=...`), so every
/// object the history makes is credited to `build`.
#[test]
fn a_command_tools_build_makes_the_history_as_drift_role() {
    let sandbox = Sandbox::new();
    let psql = format!("{}/psql -X -q -v ON_ERROR_STOP=1", pg_bin_dir());
    let text = format!(
        "name: drift-test\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: command\n  dir: {}\n  revisions: [0005_tickets_assignee]\n  apply: {psql} -f {{rev}}.sql\n  build: 'for f in 0*.sql; do {psql} -f \"$f\" || exit 1; done'\ndrift:\n  role: app\n{FORMATS}",
        drift_dumps().path("four_changes").display(),
        fixture("drift_sql").display()
    );
    let scenario = sandbox.write("command.yaml", &text).display().to_string();
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(0);
    assert_all_applied(&out.report(), &["0005_tickets_assignee"]);
    let d = drift_of(&out);
    assert_eq!(d.role.as_deref(), Some("app"));
    assert_eq!(d.error, None, "the build command ran");
    assert_eq!(d.findings.len(), 4, "{:#?}", d.findings);
    for f in d.findings.iter().filter(|f| f.history.is_some()) {
        assert_eq!(f.revision.as_deref(), Some("build"), "{f:#?}");
    }
    assert_eq!(finding(&d, DriftKind::Index, "public.tickets_title_by_hand_idx").cause, DriftCause::OnlyInProduction);
    sandbox.assert_no_leaks();
}

// ---------------------------------------------------------------- 8. `rehearse drift`

/// `rehearse drift` checks drift though the scenario has no `drift:`, and
/// judges no budgets: the budget `run` breaches is not judged.
#[test]
fn rehearse_drift_forces_the_check_and_judges_no_budgets() {
    let sandbox = Sandbox::new();
    let folder = sandbox.path().join("migrations");
    std::fs::create_dir_all(&folder).unwrap();
    for entry in std::fs::read_dir(fixture("drift_sql")).unwrap().flatten() {
        std::fs::copy(entry.path(), folder.join(entry.file_name())).unwrap();
    }
    std::fs::write(folder.join("0006_slow.sql"), "SELECT pg_sleep(0.3);\n").unwrap();
    let budgets = "budgets:\n  migration:\n    max_runtime: 100ms\n    on_exceed: continue\n";
    let scenario = sql_scenario(&sandbox, &drift_dumps().path("four_changes"), &folder, budgets);

    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(1);
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    assert_eq!(report.drift, None, "no drift: in the scenario, no check under `run`");

    let out = sandbox.rehearse(&["drift", &scenario]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Passed);
    assert!(report.breaches.is_empty(), "{:?}", report.budget_breaches);
    assert_all_applied(&report, &["0005_tickets_assignee", "0006_slow"]);
    let d = report.drift.as_ref().expect("`rehearse drift` checks drift");
    assert_four_changes(d);
    assert!(drift_case(&out).failure.is_none(), "findings fail nothing under `rehearse drift`");
    sandbox.assert_no_leaks();
}
