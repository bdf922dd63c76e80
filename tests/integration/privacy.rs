//! Redaction (`report.redact`, on by default), on real servers: the
//! messages PostgreSQL writes with a row's values in them — a unique index
//! that fails on duplicate e-mails, a check constraint on an updated row, a
//! race copy's duplicate key, an app query that no longer fits the column's
//! type — leave no value in any artifact (report.md, report.json, junit.xml,
//! GitHub's step summary), on the terminal (the table, the errors) or in the
//! progress events; with `redact: false` they are there.

use std::path::PathBuf;

use rehearse::report::{MigrationStatus, Report};

use crate::support::{pg_bin_dir, RunOutput, Sandbox};

/// Production's rows: every value with "secret" in it, so one grep finds any of them.
const DUMP: &str = "--
-- PostgreSQL database dump
--
CREATE TABLE public.users (
    id integer PRIMARY KEY,
    email text NOT NULL,
    age integer CHECK (age >= 0),
    tag text
);
INSERT INTO public.users VALUES
    (1, 'alice.secret@example.com', 30, 'x'),
    (2, 'alice.secret@example.com', 41, 'y'),
    (3, 'carol.secret@example.com', 7, 'z');
CREATE TABLE public.accounts (login text PRIMARY KEY);
INSERT INTO public.accounts VALUES ('grace.secret@example.com');
";

/// The values above and the app's constant, as they would leak.
const VALUES: [&str; 4] = ["alice.secret", "carol.secret", "grace.secret", "henry.secret"];

/// A release, its migration files, and whether to redact.
struct Case {
    migrations: &'static [(&'static str, &'static str)],
    extra: String,
    /// The server binaries (`--pg-bin`); None: this machine's PostgreSQL 15.
    pg_bin: Option<String>,
}

/// What one run left for a reader: every artifact it wrote, and the terminal.
struct Seen {
    out: RunOutput,
    texts: Vec<(String, String)>,
}

impl Seen {
    fn run(sandbox: &Sandbox, case: &Case, redact: bool) -> Seen {
        let dump = sandbox.write("prod.sql", DUMP);
        sandbox.migrations(case.migrations);
        let extra = format!("{}report:\n  redact: {redact}\n", case.extra);
        let scenario = sandbox.scenario(&dump, &extra);
        let summary = sandbox.path().join("step-summary.md");
        let _ = std::fs::remove_file(&summary);
        let _ = std::fs::remove_dir_all(sandbox.reports());
        let mut args = vec!["run", scenario.to_str().unwrap(), "--format", "table,markdown,json,junit"];
        if let Some(bin) = &case.pg_bin {
            args.extend(["--pg-bin", bin.as_str()]);
        }
        let out = sandbox.rehearse_env(&args, &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())]);
        let mut texts = vec![("stdout".to_string(), out.stdout.clone()), ("stderr".to_string(), out.stderr.clone())];
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(sandbox.reports()).unwrap().flatten().map(|e| e.path()).collect();
        files.push(summary);
        files.sort();
        for file in files {
            texts.push((file.display().to_string(), std::fs::read_to_string(&file).unwrap()));
        }
        Seen { out, texts }
    }

    /// Where each value shows, as (where, value).
    fn leaks(&self) -> Vec<(String, &'static str)> {
        let mut found = Vec::new();
        for (name, text) in &self.texts {
            found.extend(VALUES.iter().filter(|v| text.contains(*v)).map(|v| (name.clone(), *v)));
        }
        found
    }

    fn names(&self) -> Vec<&str> {
        self.texts.iter().map(|(n, _)| n.rsplit('/').next().unwrap()).collect()
    }

    fn report(&self) -> Report {
        self.out.report()
    }
}

/// Rehearses `case` redacted, then not: no value anywhere, with every
/// message in its shape; then the values `shown` where PostgreSQL put them.
fn redacted_then_shown(case: &Case, shapes: &[&str], shown: &[&str]) -> Report {
    let sandbox = Sandbox::new();
    let seen = Seen::run(&sandbox, case, true);
    assert_eq!(seen.names(), ["stdout", "stderr", "junit.xml", "report.json", "report.md", "step-summary.md"]);
    assert_eq!(seen.leaks(), [], "no value in any artifact, the terminal or the events:\n{}", seen.out.stderr);
    let json = seen.out.json_text();
    for shape in shapes {
        assert!(json.contains(shape), "{shape:?} in report.json:\n{json}");
    }
    let report = seen.report();
    assert!(report.redacted, "the report says its values were taken out");
    let plain = Seen::run(&sandbox, case, false);
    let leaks = plain.leaks();
    for value in shown {
        for file in ["report.json", "report.md", "junit.xml"] {
            let found = leaks.iter().any(|(n, v)| v == value && n.ends_with(file));
            assert!(found, "{value} in {file} with redact false: {leaks:?}");
        }
    }
    assert!(!plain.report().redacted);
    sandbox.assert_no_leaks();
    report
}

#[test]
fn a_unique_index_on_duplicate_emails_fails_without_naming_the_email() {
    let case = Case {
        migrations: &[("0001_unique_email.sql", "CREATE UNIQUE INDEX users_email_key ON public.users (email);\n")],
        extra: String::new(),
        pg_bin: None,
    };
    let report = redacted_then_shown(&case, &["Key (email)=(…) is duplicated."], &["alice.secret"]);
    assert_eq!(report.migrations[0].status, MigrationStatus::Failed);
}

#[test]
fn a_check_constraint_fails_on_a_row_without_showing_the_row() {
    let case = Case {
        migrations: &[("0001_negative_age.sql", "UPDATE public.users SET age = -1 WHERE id = 3;\n")],
        extra: String::new(),
        pg_bin: None,
    };
    let report = redacted_then_shown(&case, &["Failing row contains (…)."], &["carol.secret"]);
    assert_eq!(report.migrations[0].status, MigrationStatus::Failed);
}

/// PostgreSQL 18 words these messages as 15 does (its errdetail for a
/// duplicate key and a failing row is unchanged), so the same shapes match.
#[test]
fn a_unique_index_and_a_check_constraint_on_postgresql_18_show_no_value_either() {
    let bin = Some(crate::postgres18::pg18_bin());
    let unique = Case {
        migrations: &[("0001_unique_email.sql", "CREATE UNIQUE INDEX users_email_key ON public.users (email);\n")],
        extra: String::new(),
        pg_bin: bin.clone(),
    };
    let report = redacted_then_shown(&unique, &["Key (email)=(…) is duplicated."], &["alice.secret"]);
    assert!(report.postgres.version.as_deref().is_some_and(|v| v.starts_with("18.")), "{:?}", report.postgres);
    let check = Case {
        migrations: &[("0001_negative_age.sql", "UPDATE public.users SET age = -1 WHERE id = 3;\n")],
        extra: String::new(),
        pg_bin: bin,
    };
    redacted_then_shown(&check, &["Failing row contains (…)."], &["carol.secret"]);
}

#[test]
fn a_race_copy_on_a_duplicate_key_and_an_app_query_on_a_value_show_neither() {
    // The release changes users.tag to an integer: the app's query with a
    // text constant no longer analyzes ("invalid input syntax for type
    // integer"), and each racing copy inserts production's account again.
    let psql = format!("{}/psql", pg_bin_dir());
    let sandbox_corpus = "SELECT id FROM public.users WHERE tag = 'henry.secret';\n";
    let case = Case {
        migrations: &[("0001_tag_integer.sql", "ALTER TABLE public.users ALTER COLUMN tag TYPE integer USING 0;\n")],
        extra: format!(
            "  table: public.schema_migrations\ncompat:\n  queries: queries.sql\nrace:\n  replicas: 2\n  command: '{psql} \"$DATABASE_URL\" -X -v ON_ERROR_STOP=1 -c \"INSERT INTO public.accounts SELECT * FROM public.accounts\"'\n"
        ),
        pg_bin: None,
    };
    let sandbox = Sandbox::new();
    sandbox.write("queries.sql", sandbox_corpus);
    let seen = Seen::run(&sandbox, &case, true);
    assert_eq!(seen.leaks(), [], "no value anywhere:\n{}", seen.out.stderr);
    let report = seen.report();
    let race = report.race.as_ref().unwrap_or_else(|| panic!("a race; stderr:\n{}", seen.out.stderr));
    for copy in &race.copies {
        assert!(copy.output.contains("Key (login)=(…) already exists."), "{}", copy.output);
    }
    let broken = &report.migrations[0].compat.as_ref().expect("checked").broken;
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0].message, "invalid input syntax for type integer: \"…\"");
    assert_eq!(broken[0].query, "SELECT id FROM public.users WHERE tag = $1");
    let plain = Seen::run(&sandbox, &case, false);
    let leaks = plain.leaks();
    for value in ["grace.secret", "henry.secret"] {
        assert!(leaks.iter().any(|(n, v)| *v == value && n.ends_with("report.json")), "{value}: {leaks:?}");
    }
    sandbox.assert_no_leaks();
}
