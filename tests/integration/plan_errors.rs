//! Bad input is refused while the plan is resolved, before anything starts:
//! exit code 3, an error of the kind a caller can match, and a message
//! naming the file, line and column, or the setting and what to do. One case
//! runs the binary end to end (exit code, stderr, no stdout, no report), and
//! so does the command line's own error; the rest resolve the plan in this
//! process, as `rehearse run` does first, since spawning the binary would
//! add nothing to them.

use std::path::Path;

use rehearse::backend::BackendPlan;
use rehearse::error::ErrorKind;
use rehearse::plan::{Overrides, Plan};
use tokio_util::sync::CancellationToken;

use crate::support::{dumps, Sandbox};

#[test]
fn bad_input_through_the_binary_exits_3_with_the_message_on_stderr_only() {
    let s = Sandbox::new();
    let path = s.write("bad.yaml", "dump: x.dump\nmigrations:\n  tool: sql\n  dir: .\n  tabel: x\n");
    s.rehearse_bad_input(&["run", path.to_str().unwrap()], &["bad.yaml:5:3", "unknown field `tabel`"])
        .assert_nothing_ran();
}

#[test]
fn unknown_flag_is_bad_input_not_a_migration_failure() {
    let s = Sandbox::new();
    s.rehearse_bad_input(&["run", "x.yaml", "--no-such-flag"], &["--no-such-flag"]).assert_nothing_ran();
}

/// Resolves the plan for `scenario` as `rehearse run` does before it starts anything.
fn resolve(scenario: &Path, overrides: &Overrides) -> rehearse::Result<Plan> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(Plan::resolve(scenario, overrides, &CancellationToken::new()))
}

/// The plan is refused with an error of `kind`, and its exit code (3 for
/// bad input), the message with every cause holding each of `expected`:
/// what it names, what to do.
fn refused(result: rehearse::Result<Plan>, kind: ErrorKind, expected: &[&str]) {
    let err = match result {
        Ok(plan) => panic!("the plan resolved, yet bad input was expected: {plan:#?}"),
        Err(err) => err,
    };
    let text = err.render();
    assert_eq!((err.kind(), err.exit_code()), (kind, kind.exit_code()), "{text}");
    for e in expected {
        assert!(text.contains(e), "expected {e:?} in:\n{text}");
    }
}

/// `yaml` as the sandbox's bad.yaml is refused as bad input of `kind`.
fn fails_with(s: &Sandbox, yaml: &str, kind: ErrorKind, expected: &[&str]) {
    let path = s.write("bad.yaml", yaml);
    refused(resolve(&path, &Overrides::default()), kind, expected);
}

#[test]
fn no_scenario_file() {
    let s = Sandbox::new();
    refused(
        resolve(&s.path().join("nowhere.yaml"), &Overrides::default()),
        ErrorKind::ScenarioInvalid,
        &["nowhere.yaml", "caused by: No such file or directory"],
    );
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\nmigrations: {tool: sql, dir: .\n",
        ErrorKind::ScenarioInvalid,
        &["bad.yaml", "line 3"],
    );
}

#[test]
fn unknown_key_is_named_with_line_and_column() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\nmigrations:\n  tool: sql\n  dir: .\n  tabel: x\n",
        ErrorKind::ScenarioInvalid,
        &["bad.yaml:5:3", "unknown field `tabel`"],
    );
}

#[test]
fn bad_duration_is_named_with_line() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\nmigrations: {tool: sql, dir: .}\nobserve:\n  sample_interval: 10 parsecs\n",
        ErrorKind::ScenarioInvalid,
        &["bad.yaml:4:", "sample_interval"],
    );
}

#[test]
fn bad_size_is_named_with_line() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\nmigrations: {tool: sql, dir: .}\nbudgets:\n  migration:\n    max_wal: lots\n",
        ErrorKind::ScenarioInvalid,
        &["bad.yaml:5:", "max_wal", "invalid size `lots`"],
    );
}

#[test]
fn wrong_type_is_named_with_line() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\npostgres:\n  restore_jobs: many\nmigrations: {tool: sql, dir: .}\n",
        ErrorKind::ScenarioInvalid,
        &["bad.yaml:3:", "restore_jobs"],
    );
}

#[test]
fn missing_env_var_is_named_with_line() {
    let s = Sandbox::new();
    let yaml = "dump: x.dump\npostgres:\n  url: postgres://u@${REHEARSE_TEST_SURELY_UNSET}/db\nmigrations: {tool: sql, dir: .}\n";
    fails_with(&s, yaml, ErrorKind::ScenarioInvalid, &["bad.yaml:3:", "REHEARSE_TEST_SURELY_UNSET is not set"]);
}

#[test]
fn missing_dump_names_the_path() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let missing = s.path().join("nowhere/prod.dump");
    fails_with(
        &s,
        "dump: nowhere/prod.dump\nmigrations: {tool: sql, dir: migrations}\n",
        ErrorKind::DumpUnreadable,
        &[missing.to_str().unwrap()],
    );
}

#[test]
fn empty_dump() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    std::fs::write(s.path().join("empty.dump"), b"").unwrap();
    fails_with(
        &s,
        "dump: empty.dump\nmigrations: {tool: sql, dir: migrations}\n",
        ErrorKind::DumpUnreadable,
        &["is empty (0 bytes)"],
    );
}

#[test]
fn random_bytes_are_not_a_dump() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    std::fs::write(s.path().join("noise.dump"), [0x13u8, 0x00, 0xfe, 0x99, 0x42, 0x00, 0x17]).unwrap();
    fails_with(
        &s,
        "dump: noise.dump\nmigrations: {tool: sql, dir: migrations}\n",
        ErrorKind::DumpUnsupported,
        &["13 00 fe 99"],
    );
}

#[test]
fn missing_and_empty_migration_folders() {
    let s = Sandbox::new();
    let dump = dumps().path("custom");
    fails_with(
        &s,
        &format!("dump: {}\nmigrations: {{tool: sql, dir: nowhere}}\n", dump.display()),
        ErrorKind::ScenarioInvalid,
        &["nowhere is not a directory"],
    );
    std::fs::create_dir(s.path().join("empty")).unwrap();
    fails_with(
        &s,
        &format!("dump: {}\nmigrations: {{tool: sql, dir: empty}}\n", dump.display()),
        ErrorKind::MigrationsInvalid,
        &["holds no *.sql migration files"],
    );
}

#[test]
fn unversioned_migration_file_is_bad_input() {
    let s = Sandbox::new();
    s.migrations(&[("add_users.sql", "SELECT 1;")]);
    let scenario = s.scenario(&dumps().path("custom"), "");
    refused(
        resolve(&scenario, &Overrides::default()),
        ErrorKind::MigrationsInvalid,
        &["add_users.sql has no version prefix"],
    );
}

#[test]
fn migrations_process_is_one_or_per_revision_and_for_alembic_only() {
    let s = Sandbox::new();
    let dump = dumps().path("custom");
    let alembic = format!("{}/tests/fixtures/alembic_enum", crate::support::REPO);
    fails_with(
        &s,
        &format!("dump: {}\nmigrations:\n  tool: alembic\n  dir: {alembic}\n  process: sometimes\n", dump.display()),
        ErrorKind::ScenarioInvalid,
        &["bad.yaml:5:", "unknown variant `sometimes`", "one", "per_revision"],
    );
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let scenario = s.scenario(&dump, "");
    let text = std::fs::read_to_string(&scenario).unwrap().replace("tool: sql", "tool: sql\n  process: one");
    fails_with(&s, &text, ErrorKind::ScenarioInvalid, &["migrations.process is for tool: alembic"]);
}

// Which backend: a server the user named is never silently left unused
// (backend::choose). The scenarios are sound but for the backend.

/// A scenario on a real dump and one migration, with `postgres` as its `postgres:` lines.
fn on_backend(s: &Sandbox, postgres: &str) -> std::path::PathBuf {
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    s.scenario_on(postgres, &dumps().path("custom"), "")
}

const NOWHERE_URL: &str = "postgres://nobody@127.0.0.1:1/x";

#[test]
fn a_url_with_backend_local_is_refused_naming_both() {
    let s = Sandbox::new();
    let scenario = on_backend(&s, &format!("backend: local\n  url: {NOWHERE_URL}"));
    refused(
        resolve(&scenario, &Overrides::default()),
        ErrorKind::ArgumentsInvalid,
        &["postgres.url", "`backend: url`"],
    );
}

#[test]
fn an_image_with_backend_local_is_refused_naming_both() {
    let s = Sandbox::new();
    let scenario = on_backend(&s, "backend: local\n  image: postgres:15");
    refused(
        resolve(&scenario, &Overrides::default()),
        ErrorKind::ArgumentsInvalid,
        &["postgres.image", "`backend: docker`"],
    );
}

#[test]
fn url_and_image_flags_together_are_refused() {
    let s = Sandbox::new();
    let scenario = on_backend(&s, "backend: auto");
    let flags = Overrides { url: Some(NOWHERE_URL.into()), image: Some("postgres:15".into()), ..Overrides::default() };
    refused(resolve(&scenario, &flags), ErrorKind::ArgumentsInvalid, &["--url and --image", "pass one"]);
}

#[test]
fn pg_bin_flag_with_backend_docker_is_refused() {
    let s = Sandbox::new();
    let scenario = on_backend(&s, "backend: docker");
    let flags = Overrides { pg_bin: Some("/usr/lib/postgresql/15/bin".into()), ..Overrides::default() };
    refused(resolve(&scenario, &flags), ErrorKind::ArgumentsInvalid, &["--pg-bin", "`backend: local`"]);
}

#[test]
fn a_url_flag_selects_the_url_backend_over_backend_local() {
    let s = Sandbox::new();
    let scenario = on_backend(&s, "backend: local");
    // Resolving a url plan parses the URL and finds the local client tools;
    // it does not connect, so a URL nothing listens on will do.
    let flags = Overrides { url: Some(NOWHERE_URL.into()), ..Overrides::default() };
    let plan = resolve(&scenario, &flags).unwrap_or_else(|e| panic!("{}", e.render()));
    match &plan.backend {
        BackendPlan::Url(url) => {
            let server = &url.server;
            assert_eq!((server.host.as_str(), server.port, server.user.as_str()), ("127.0.0.1", 1, "nobody"));
            assert_eq!(server.dbname, "x");
        }
        other => panic!("--url selects the url backend, got {other:?}"),
    }
}

/// A scenario on the demo dump with `estimate` set to `estimate_yaml`
/// (YAML lines under `estimate:`), and `stats` written as stats.json, is
/// refused as bad input of `kind`.
fn estimate_fails_with(estimate_yaml: &str, stats: &str, kind: ErrorKind, expected: &[&str]) {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    s.write("stats.json", stats);
    let path = s.scenario(&dumps().path("custom"), &format!("estimate:\n{estimate_yaml}"));
    refused(resolve(&path, &Overrides::default()), kind, expected);
}

const STATS_HEAD: &str = r#""schema": "rehearse.stats/v1", "taken_at": "2026-11-29T00:00:00Z", "server_version": "15.18", "database": "prod", "settings": {}"#;

#[test]
fn production_statistics_of_another_schema_version_are_refused() {
    estimate_fails_with(
        "  production: stats.json\n",
        r#"{"schema": "rehearse.stats/v2", "relations": []}"#,
        ErrorKind::StatisticsInvalid,
        &["stats.json is not rehearse.stats/v1 (its schema is `rehearse.stats/v2`)", "rehearse stats"],
    );
}

#[test]
fn production_statistics_without_relations_are_refused() {
    estimate_fails_with(
        "  production: stats.json\n",
        &format!("{{{STATS_HEAD}}}"),
        ErrorKind::StatisticsInvalid,
        &["stats.json lack what an estimate needs", "relations"],
    );
    estimate_fails_with(
        "  production: stats.json\n",
        &format!("{{{STATS_HEAD}, \"relations\": []}}"),
        ErrorKind::StatisticsInvalid,
        &["list no relations"],
    );
    estimate_fails_with("  production: missing.json\n", "{}", ErrorKind::StatisticsInvalid, &["missing.json"]);
}

/// public.orders as `rehearse stats` writes it, each of `changes` (key, JSON) replacing or adding a key.
fn orders_stats(changes: &[(&str, &str)]) -> String {
    let mut fields = vec![
        ("relation", r#""public.orders""#),
        ("kind", r#""table""#),
        ("table", "null"),
        ("rows", "1000"),
        ("pages", "10"),
        ("bytes", "81920"),
        ("total_bytes", "98304"),
    ];
    for (key, value) in changes {
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value,
            None => fields.push((key, value)),
        }
    }
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", fields.join(", "))
}

fn stats_of(relations: &[String]) -> String {
    format!("{{{STATS_HEAD}, \"relations\": [{}]}}", relations.join(", "))
}

/// Scaled by, a wrong figure changes an estimate silently: each is refused
/// naming the relation, the key and what is wrong with it.
#[test]
fn production_statistics_with_a_wrong_figure_or_a_relation_twice_are_refused() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("bytes", "-8192")], "public.orders has bytes -8192, below 0"),
        (&[("total_bytes", "-1")], "public.orders has total_bytes -1, below 0"),
        (&[("rows", "-2")], "public.orders has rows -2, below -1"),
        (&[("rows", "1e300")], "public.orders has rows 1e+300, out of range"),
        (&[("bytes", "18446744073709551615")], "has bytes 18446744073709551615, out of range"),
        (&[("pages", "-1e300")], "has pages -1e+300, out of range"),
        (&[("pages", "-2")], "public.orders has pages -2, below -1"),
        (&[("rows", "1.5")], "public.orders has rows 1.5, not a whole number"),
        (&[("rows", "1000.0")], "public.orders has rows 1000.0, written as a decimal"),
        (&[("rows", r#""1000""#)], r#"public.orders has rows "1000", not a number"#),
        (&[("bytes", "null")], "public.orders has bytes null, not a number"),
        (&[("kind", r#""tabel""#)], r#"public.orders has kind "tabel", which is not a relation kind"#),
        (&[("table", "5")], "public.orders has table 5: it must be a schema.name or null"),
        (&[("relation", "7")], "relation 1 of 1 has no `relation`"),
    ];
    for (changes, expected) in cases {
        let stats = stats_of(&[orders_stats(changes)]);
        let kind = ErrorKind::StatisticsInvalid;
        estimate_fails_with("  production: stats.json\n", &stats, kind, &["stats.json: ", expected, "rehearse stats"]);
    }
    let missing = orders_stats(&[]).replace(r#", "pages": 10"#, "");
    let kind = ErrorKind::StatisticsInvalid;
    estimate_fails_with("  production: stats.json\n", &stats_of(&[missing]), kind, &["public.orders has no pages"]);
    // Twice, even with the same figures.
    let twice = stats_of(&[orders_stats(&[]), orders_stats(&[("kind", r#""index""#)]), orders_stats(&[])]);
    let listed_twice = "public.orders is listed twice (relations 1 and 2)";
    estimate_fails_with("  production: stats.json\n", &twice, kind, &[listed_twice]);
    // JSON has no NaN or infinity: not JSON at all.
    let nan = stats_of(&[orders_stats(&[("rows", "NaN")])]);
    estimate_fails_with("  production: stats.json\n", &nan, kind, &["stats.json are not JSON"]);
}

/// What the server itself writes: reltuples -1 for a relation never
/// analyzed, relpages -1 for a partitioned table (`rehearse stats` of a
/// server with partitions wrote one, and its own file was refused).
#[test]
fn production_statistics_of_a_relation_never_analyzed_are_taken() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    s.write("stats.json", &stats_of(&[orders_stats(&[("rows", "-1"), ("pages", "-1")])]));
    let path = s.scenario(&dumps().path("custom"), "estimate:\n  production: stats.json\n");
    let plan = resolve(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{}", e.render()));
    let estimator = plan.estimate.expect("an estimate is planned");
    assert_eq!(estimator.stats.relation("public.orders").map(|r| r.rows), Some(-1));
}

#[test]
fn a_speed_of_zero_or_less_is_refused() {
    let stats = format!(
        "{{{STATS_HEAD}, \"relations\": [{{\"relation\": \"public.orders\", \"kind\": \"table\", \"table\": null, \
         \"rows\": 1, \"pages\": 1, \"bytes\": 8192, \"total_bytes\": 8192}}]}}"
    );
    for speed in ["0", "-2", ".nan"] {
        estimate_fails_with(
            &format!("  production: stats.json\n  speed: {speed}\n"),
            &stats,
            ErrorKind::ScenarioInvalid,
            &["estimate.speed", "positive number"],
        );
    }
    // Without them, budgets cannot apply to an estimate.
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let path = s.scenario(&dumps().path("custom"), "budgets:\n  apply_to: estimate\n");
    let expected = ["budgets.apply_to is estimate", "no `estimate:` section"];
    refused(resolve(&path, &Overrides::default()), ErrorKind::ScenarioInvalid, &expected);
}

// A standby (`observe.standby`, `observe.standby_url`) and what needs one.

/// A scenario on a real dump and one migration, on `postgres`, with `extra` YAML.
fn standby_scenario(s: &Sandbox, postgres: &str, extra: &str) -> std::path::PathBuf {
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    s.scenario_on(postgres, &dumps().path("custom"), extra)
}

#[test]
fn a_standby_url_on_a_backend_that_starts_its_own_server_is_refused() {
    let s = Sandbox::new();
    let scenario = standby_scenario(&s, "backend: local", &format!("observe:\n  standby_url: {NOWHERE_URL}\n"));
    refused(
        resolve(&scenario, &Overrides::default()),
        ErrorKind::ScenarioInvalid,
        &["observe.standby_url", "local backend", "observe.standby: true"],
    );
}

#[test]
fn a_standby_the_url_backend_would_have_to_start_is_refused() {
    let s = Sandbox::new();
    let scenario = standby_scenario(&s, &format!("backend: url\n  url: {NOWHERE_URL}"), "observe:\n  standby: true\n");
    refused(
        resolve(&scenario, &Overrides::default()),
        ErrorKind::ScenarioInvalid,
        &["observe.standby with the url backend", "observe.standby_url"],
    );
    let settings =
        format!("observe:\n  standby_url: {NOWHERE_URL}\n  standby_settings:\n    hot_standby_feedback: on\n");
    let scenario = standby_scenario(&s, &format!("backend: url\n  url: {NOWHERE_URL}"), &settings);
    let expected = ["observe.standby_settings cannot be applied"];
    refused(resolve(&scenario, &Overrides::default()), ErrorKind::ScenarioInvalid, &expected);
}

#[test]
fn standby_settings_and_budgets_without_a_standby_are_refused() {
    let s = Sandbox::new();
    for extra in [
        "observe:\n  standby_settings:\n    hot_standby_feedback: on\n",
        "budgets:\n  migration:\n    max_standby_lag: 5s\n",
        "budgets:\n  overrides:\n    0001_a:\n      max_standby_read_wait: 1s\n",
    ] {
        let scenario = standby_scenario(&s, "backend: local", extra);
        let expected = ["need a standby", "observe.standby: true"];
        refused(resolve(&scenario, &Overrides::default()), ErrorKind::ScenarioInvalid, &expected);
    }
    let scenario = standby_scenario(&s, "backend: local", "observe:\n  standby: true\n  standby_interval: 1ms\n");
    let expected = ["observe.standby_interval must be at least 10ms"];
    refused(resolve(&scenario, &Overrides::default()), ErrorKind::ScenarioInvalid, &expected);
}

/// A scenario on the custom dump whose compat.queries is queries.`ext`
/// holding `text` (None: no such file) is refused as the app's queries,
/// with each of `expected`.
fn corpus_fails_with(ext: &str, text: Option<&str>, expected: &[&str]) {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    if let Some(text) = text {
        s.write(&format!("queries.{ext}"), text);
    }
    let path = s.scenario(&dumps().path("custom"), &format!("compat:\n  queries: queries.{ext}\n"));
    refused(resolve(&path, &Overrides::default()), ErrorKind::AppQueriesInvalid, expected);
}

#[test]
fn a_bad_corpus_of_the_apps_queries_is_refused() {
    corpus_fails_with("sql", None, &["queries.sql", "rehearse queries"]);
    corpus_fails_with(
        "sql",
        Some("SELECT 1;\nSELECT FROM WHERE (;\n"),
        &["queries.sql", "are not SQL PostgreSQL can parse"],
    );
    corpus_fails_with("sql", Some("SET search_path = app;\n"), &["hold no query to check (1 utility statement(s)"]);
    corpus_fails_with(
        "json",
        Some(r#"{"schema": "rehearse.stats/v1", "relations": []}"#),
        &["queries.json is not rehearse.queries/v1 (its schema is `rehearse.stats/v1`)", "rehearse queries"],
    );
    corpus_fails_with("json", Some(r#"{"schema": "rehearse.queries/v1"}"#), &["lack what a check needs"]);
    // Without a corpus, fail_on_incompatible has nothing to judge.
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let path = s.scenario(&dumps().path("custom"), "budgets:\n  fail_on_incompatible: true\n");
    let expected = ["budgets.fail_on_incompatible is true", "no `compat:` section"];
    refused(resolve(&path, &Overrides::default()), ErrorKind::ScenarioInvalid, &expected);
}

// The app image (`migrations.image`, `migrations.job`): what it runs, and where.

#[test]
fn the_app_image_is_refused_where_it_cannot_apply() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let dump = dumps().path("custom");
    let with = |migrations: &str| format!("dump: {}\nmigrations:\n{migrations}", dump.display());
    let invalid = ErrorKind::ScenarioInvalid;
    fails_with(
        &s,
        &with("  tool: sql\n  dir: migrations\n  image: app:1\n"),
        invalid,
        &["with tool: sql", "tool: alembic"],
    );
    fails_with(
        &s,
        &with("  tool: alembic\n  image: app:1\n  job: job.yaml\n  dir: /app\n"),
        invalid,
        &["set migrations.image or migrations.job, not both"],
    );
    fails_with(
        &s,
        &with("  tool: alembic\n  image: app:1\n  dir: app\n"),
        invalid,
        &["migrations.dir is the folder inside the image", "absolute path"],
    );
    fails_with(
        &s,
        &with("  tool: alembic\n  dir: /app\n  job_container: migrate\n"),
        invalid,
        &["migrations.job_container needs migrations.job"],
    );
    fails_with(
        &s,
        &with("  tool: command\n  apply: x\n  revisions: [a]\n  pull: true\n"),
        invalid,
        &["migrations.pull needs migrations.image"],
    );
    fails_with(
        &s,
        &with("  tool: alembic\n  job: missing-job.yaml\n"),
        ErrorKind::MigrationsInvalid,
        &["missing-job.yaml", "helm template"],
    );
    s.write("two.yaml", "kind: Job\nmetadata: {name: a}\nspec: {template: {spec: {containers: []}}}\n---\nkind: Job\nmetadata: {name: b}\nspec: {template: {spec: {containers: []}}}\n");
    fails_with(&s, &with("  tool: alembic\n  job: two.yaml\n"), ErrorKind::MigrationsInvalid, &["holds 2 Jobs (a, b)"]);
}

#[test]
fn a_race_needs_two_replicas_a_command_where_rehearse_cannot_tell_one_and_fail_on_race_a_race() {
    let s = Sandbox::new();
    let dump = dumps().path("custom");
    let sql = |race: &str| s.scenario(&dump, race);
    let invalid = ErrorKind::ScenarioInvalid;
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    refused(
        resolve(&sql("race: { replicas: 1, command: ./up.sh }\n"), &Overrides::default()),
        invalid,
        &["race.replicas is 1", "at least 2"],
    );
    refused(
        resolve(&sql("race:\n"), &Overrides::default()),
        invalid,
        &["race.command is required when migrations.tool is sql"],
    );
    refused(
        resolve(&sql("race: { command: flyway migrate }\n"), &Overrides::default()),
        invalid,
        &["a race with migrations.tool sql needs migrations.table"],
    );
    refused(resolve(&sql("race: { command: ' ' }\n"), &Overrides::default()), invalid, &["race.command is empty"]);
    refused(
        resolve(&sql("race: { command: ./up.sh, timeout: 0s }\n"), &Overrides::default()),
        invalid,
        &["race.timeout must be at least 1s"],
    );
    refused(resolve(&sql("race: { replica: 2 }\n"), &Overrides::default()), invalid, &["unknown field `replica`"]);
    refused(
        resolve(&sql("budgets:\n  fail_on_race: true\n"), &Overrides::default()),
        invalid,
        &["budgets.fail_on_race is true", "no `race:` section"],
    );
    fails_with(
        &s,
        &format!(
            "dump: {}\nmigrations:\n  tool: command\n  revisions: [a]\n  apply: ./apply.sh {{rev}}\nrace: {{}}\n",
            dump.display()
        ),
        invalid,
        &["race.command is required when migrations.tool is command", "{rev}"],
    );
}

/// `hazards.ignore` names rules rehearse knows: a mistyped rule is bad input
/// before anything starts, at its line and column, listing every rule; an
/// entry that lists no migration, or a mistyped key in one, is refused too.
#[test]
fn hazards_ignore_takes_known_rules_only() {
    let s = Sandbox::new();
    let dump = dumps().path("custom");
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let path = s.scenario(&dump, "hazards:\n  ignore:\n    - no-lock-timeout\n    - no-lock-timout\n");
    let out = s.rehearse_bad_input(
        &["run", path.to_str().unwrap()],
        &["scenario.yaml:11:7", "unknown hazard rule `no-lock-timout`", "docs/hazards.md"],
    );
    out.assert_nothing_ran();
    for rule in rehearse::kinds::Rule::ALL {
        assert!(out.stderr.contains(rule.as_str()), "the known rules are listed, {rule} too:\n{}", out.stderr);
    }
    let with = |ignore: &str| s.scenario(&dump, &format!("hazards:\n  ignore:\n{ignore}"));
    refused(
        resolve(&with("    - rule: set-not-null\n      migrations: []\n"), &Overrides::default()),
        ErrorKind::ScenarioInvalid,
        &["hazards.ignore: `set-not-null` lists no migration", "give the rule alone"],
    );
    refused(
        resolve(&with("    - {rule: set-not-null, migration: [a]}\n"), &Overrides::default()),
        ErrorKind::ScenarioInvalid,
        &["scenario.yaml:10:", "unknown field `migration`", "expected `rule` or `migrations`"],
    );
}

// The checks of this machine that follow the input's: each its own kind of
// failure (exit 3 or 4), the run stopped before it starts anything.

#[test]
fn a_file_in_place_of_the_report_dir_is_its_own_kind_of_bad_input() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let scenario = s.scenario(&dumps().path("custom"), "");
    let file = s.write("reports.txt", "not a directory\n");
    let flags = Overrides { out: Some(file.join("nightly")), ..Overrides::default() };
    refused(resolve(&scenario, &flags), ErrorKind::ReportDirInvalid, &["(--out)"]);
}

#[test]
fn a_pg_bin_without_initdb_is_an_argument_to_fix_not_a_missing_install() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let scenario = s.scenario(&dumps().path("custom"), "");
    for backend in ["local", "auto"] {
        let scenario =
            std::fs::read_to_string(&scenario).unwrap().replace("backend: local", &format!("backend: {backend}"));
        let scenario = s.write("on.yaml", &scenario);
        let flags = Overrides { pg_bin: Some(s.path().to_path_buf()), ..Overrides::default() };
        refused(resolve(&scenario, &flags), ErrorKind::ArgumentsInvalid, &["holds no initdb"]);
    }
}

#[test]
fn a_python_that_is_not_there_is_a_missing_migration_tool() {
    let s = Sandbox::new();
    let alembic = format!("{}/tests/fixtures/alembic_dburl", crate::support::REPO);
    let yaml = format!(
        "dump: {}\nmigrations:\n  tool: alembic\n  dir: {alembic}\n  python: /nonexistent/python3\n",
        dumps().path("custom").display()
    );
    let path = s.write("bad.yaml", &yaml);
    refused(resolve(&path, &Overrides::default()), ErrorKind::MigrationToolMissing, &["migrations.python"]);
}

#[test]
fn a_retry_policy_without_lock_timeout_exits_3_naming_the_key_before_anything_starts() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let dump = dumps().path("custom").display().to_string();
    let path = s.write(
        "bad.yaml",
        &format!("dump: {dump}\nmigrations:\n  tool: sql\n  dir: migrations\n  retry: {{attempts: 3}}\n"),
    );
    s.rehearse_bad_input(&["run", path.to_str().unwrap()], &["migrations.retry.lock_timeout"]).assert_nothing_ran();
    let policy = |retry: &str| format!("dump: {dump}\nmigrations:\n  tool: sql\n  dir: migrations\n  retry: {retry}\n");
    let kind = ErrorKind::ScenarioInvalid;
    fails_with(&s, &policy("{attempts: 3}"), kind, &["migrations.retry has no lock_timeout", "lock_timeout: 2s"]);
    fails_with(&s, &policy("{lock_timeout: 0s}"), kind, &["migrations.retry.lock_timeout is 0"]);
    fails_with(&s, &policy("{lock_timeout: 1s, attempts: 0}"), kind, &["migrations.retry.attempts is 0"]);
    fails_with(&s, &policy("{lock_timeout: 1s, tries: 3}"), kind, &["bad.yaml:5:", "unknown field `tries`"]);
}
