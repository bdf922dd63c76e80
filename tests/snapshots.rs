//! Snapshots of every report format (terminal table at 80 and 120 columns
//! and unbounded, Markdown, JSON, JUnit), rendered from fixed report models,
//! so a change to the output is reviewed as a diff of `tests/snapshots/`.
//!
//! The models are `tests/fixtures/report-*.json`: `report-v1-demo.json` is a
//! real passing run of the demo; the others are hand-edited copies of it (a
//! migration failing with recovery steps and skips after it; budget breaches
//! with overrides and a baseline with regressions; a run interrupted mid-migration).
//! `report-estimate.json` is a real run of the demo with its `estimate:`
//! (production's statistics at 50× the dump), so every format shows the
//! figures at production scale. `report-compat.json` is a real run of the
//! demo with its `compat.queries`, one of which 0007 breaks.
//! `report-race.json` is a real run of `make demo-race` (three replicas of
//! `alembic upgrade head`), its `race` section from a run with the barrier
//! (held until all three reached the database; two then found the column
//! the third had added), with the checkout's directory written as `/repo`.
//! `report-apps.json` is a real run of `make demo-apps` (two apps' Alembic
//! trees on one database, a section per app), written with `/repo` the same way.
//! `report-drift.json` is a real run of `make demo-drift` (the Alembic demo on a
//! dump changed by hand, then its history from empty: two drift findings).
//! `report-ignored.json` is a real run of the demo with `hazards.ignore`
//! (no-lock-timeout everywhere, create-index-non-concurrent for 0004 and for
//! a migration that is not pending), written with `/repo` the same way.
//! `report-load.json` is a real run of `scenarios/demo-load.yaml` (`make
//! demo-load`'s first: the app's traffic and a long transaction, one
//! migration `unsafe` and one `normal_hours`), written with `/repo` the same way.
//! `report-rollback.json` is a real run of `make demo-rollback` (the demo
//! release, then its forward rollback release: the packing slip restored, the
//! values the rollback drops counted), written with `/repo` the same way.
//!
//! What differs by machine and run is pinned in the model before rendering
//! (`normalize`), not patched in the text afterwards: the timestamps, the
//! versions, the machine, and the directories of the dump and migrations.
//! The checklist is then filled again from the pinned model, as a run fills
//! it last, so its evidence lines agree with it. Measured figures (ms, bytes)
//! are the fixture's and stay as they are.
//!
//! To accept an intended change: `INSTA_UPDATE=always cargo test --test
//! snapshots`, then read the diff of `tests/snapshots/` before committing.
//! Under CI (`CI` set) a changed snapshot fails without being written.

use std::time::Duration;

use insta::assert_snapshot;
use rehearse::report::checklist::{self, ChecklistSettings};
use rehearse::report::{self, Checklist, MachineInfo, Report};

const STARTED_AT: &str = "2000-01-01T00:00:00Z";
const RESTORED_AT: &str = "2000-01-01T00:00:02Z";
const FINISHED_AT: &str = "2000-01-01T00:00:07Z";
const BASELINE_STARTED_AT: &str = "1999-12-25T00:00:00Z";
const VERSION: &str = "[version]";
const SERVER_VERSION: &str = "[server-version]";
/// A made-up machine, the same for every fixture.
const MACHINE: MachineInfo = MachineInfo { cpus: 4, memory_bytes: Some(16 << 30) };

// ---------------------------------------------------------------- fixtures

/// The fixture `tests/fixtures/report-<name>.json`, normalized.
fn fixture(name: &str) -> Report {
    let path = format!("{}/tests/fixtures/report-{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let report: Report = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} is not a rehearse.report/v1 report (fix the fixture): {e}"));
    normalize(report)
}

/// Pins what differs by machine and run, then fills the checklist again.
fn normalize(mut r: Report) -> Report {
    r.rehearse_version = VERSION.into();
    r.started_at = STARTED_AT.into();
    r.finished_at = r.finished_at.map(|_| FINISHED_AT.into());
    r.restore.restored_at = r.restore.restored_at.map(|_| RESTORED_AT.into());
    if let Some(b) = &mut r.baseline {
        b.started_at = b.started_at.as_ref().map(|_| BASELINE_STARTED_AT.into());
    }
    r.postgres.version = r.postgres.version.map(|_| SERVER_VERSION.into());
    r.machine = MACHINE;
    let r = pin_directories(r);
    let settings = checklist_settings(&r.checklist);
    Report { checklist: checklist::fill(&r, &settings), ..r }
}

/// Replaces the absolute directories of the dump, the migrations and the
/// baseline with placeholders, in every string of the model: they also
/// appear in error messages and recovery steps.
fn pin_directories(r: Report) -> Report {
    let mut dirs: Vec<(String, &str)> = Vec::new();
    let mut add = |path: &str, placeholder| {
        if let Some(dir) = std::path::Path::new(path).parent().filter(|_| path.starts_with('/')) {
            dirs.push((dir.display().to_string(), placeholder));
        }
    };
    add(&r.dump.path, "[dump-dir]");
    for file in r.migrations.iter().filter_map(|m| m.file.as_deref()) {
        add(file, "[migrations-dir]");
    }
    if let Some(b) = &r.baseline {
        add(&b.path, "[baseline-dir]");
    }
    if let Some(e) = &r.estimate {
        add(&e.production, "[stats-dir]");
    }
    if let Some(c) = &r.compat {
        add(&c.queries, "[queries-dir]");
    }
    if let Some(l) = &r.load {
        add(&l.queries, "[queries-dir]");
    }
    // Longest first, so a directory inside another is replaced whole.
    dirs.sort_by_key(|(dir, _)| std::cmp::Reverse(dir.len()));
    dirs.dedup_by(|a, b| a.0 == b.0);
    assert!(dirs.iter().all(|(dir, _)| dir != "/"), "a fixture path directly under / cannot be pinned");
    let mut value = serde_json::to_value(&r).expect("the report model serializes");
    replace_in_strings(&mut value, &dirs);
    serde_json::from_value(value).expect("the pinned model is still a report")
}

fn replace_in_strings(value: &mut serde_json::Value, dirs: &[(String, &str)]) {
    match value {
        serde_json::Value::String(s) => {
            for (dir, placeholder) in dirs {
                *s = s.replace(dir.as_str(), placeholder);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| replace_in_strings(v, dirs)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| replace_in_strings(v, dirs)),
        _ => {}
    }
}

/// The thresholds the recorded checklist was filled with (defaults when the
/// fixture has none).
fn checklist_settings(c: &Checklist) -> ChecklistSettings {
    let defaults = ChecklistSettings::default();
    let or = |ms: u64, default: Duration| if ms > 0 { Duration::from_millis(ms) } else { default };
    ChecklistSettings {
        ops_threshold: or(c.ops_threshold_ms, defaults.ops_threshold),
        deploy_window: or(c.deploy_window_ms, defaults.deploy_window),
        replica_apply_rate: match c.replica_apply_rate_bytes_per_second {
            0 => defaults.replica_apply_rate,
            rate => rate,
        },
    }
}

// ----------------------------------------------------------------- redaction

/// The last line of defence: this crate's version if a writer ever prints
/// it (a fixture cannot pin `env!("CARGO_PKG_VERSION")`), and a check that
/// no machine path slipped past `normalize`.
fn redacted(text: String) -> String {
    let text = replace_token(&text, env!("CARGO_PKG_VERSION"), VERSION);
    for marker in ["/work/", "/tmp/", "/home/", "/Users/", "/var/folders/"] {
        if let Some(line) = text.lines().find(|l| l.contains(marker)) {
            panic!("a machine path ({marker}) is left in the rendered report; pin it in normalize():\n{line}");
        }
    }
    text
}

/// `needle` replaced where it stands alone, not inside a longer number (`10.1.0`).
fn replace_token(text: &str, needle: &str, with: &str) -> String {
    let part_of_number = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        let (before, after) = (&rest[..at], &rest[at + needle.len()..]);
        let standalone = !part_of_number(before.chars().last()) && !part_of_number(after.chars().next());
        out.push_str(before);
        out.push_str(if standalone { with } else { needle });
        rest = after;
    }
    out.push_str(rest);
    out
}

// ------------------------------------------------------------------ writers

fn table(name: &str, width: Option<usize>) -> String {
    redacted(report::render_table_for_width(&fixture(name), width))
}

fn markdown(name: &str) -> String {
    redacted(report::render_markdown(&fixture(name)))
}

fn json(name: &str) -> String {
    redacted(report::render_json(&fixture(name)))
}

fn junit(name: &str) -> String {
    redacted(report::render_junit(&fixture(name)))
}

// ------------------------------------------------------- every fixture in its formats

/// A writer, and the terminal table's width.
#[derive(Clone, Copy)]
enum Format {
    Table(Option<usize>),
    Markdown,
    Json,
    Junit,
}
use Format::*;

/// Each fixture with the formats it is snapshotted in (the fixtures of one
/// feature only where that feature shows).
const SNAPSHOTS: &[(&str, &[Format])] = &[
    ("v1-demo", &[Table(Some(80)), Table(Some(120)), Table(None), Markdown, Json, Junit]),
    ("failed", &[Table(Some(80)), Table(Some(120)), Table(None), Markdown, Json, Junit]),
    ("budget", &[Table(Some(80)), Table(Some(120)), Table(None), Markdown, Json, Junit]),
    ("interrupted", &[Table(Some(80)), Table(Some(120)), Table(None), Markdown, Json, Junit]),
    ("estimate", &[Table(Some(80)), Table(Some(120)), Table(None), Markdown, Json, Junit]),
    ("compat", &[Table(Some(80)), Table(Some(120)), Table(None), Markdown, Json, Junit]),
    ("race", &[Table(Some(120)), Markdown, Json, Junit]),
    ("apps", &[Table(Some(120)), Markdown, Junit]),
    ("drift", &[Table(Some(120)), Markdown, Json, Junit]),
    ("ignored", &[Table(Some(120)), Markdown, Json]),
    ("load", &[Table(Some(80)), Table(Some(120)), Markdown, Json, Junit]),
    ("rollback", &[Table(Some(120)), Markdown, Json, Junit]),
];

/// The snapshot's name, as its file is named: `table_demo_80`, `markdown_failed`.
fn snapshot_name(fixture: &str, format: Format) -> String {
    let fixture = fixture.strip_prefix("v1-").unwrap_or(fixture);
    match format {
        Table(Some(width)) => format!("table_{fixture}_{width}"),
        Table(None) => format!("table_{fixture}_unbounded"),
        Markdown => format!("markdown_{fixture}"),
        Json => format!("json_{fixture}"),
        Junit => format!("junit_{fixture}"),
    }
}

fn render(fixture: &str, format: Format) -> String {
    match format {
        Table(width) => table(fixture, width),
        Markdown => markdown(fixture),
        Json => json(fixture),
        Junit => junit(fixture),
    }
}

/// Every snapshot is compared, and every one that differs is named, before the test fails.
#[test]
fn every_fixture_renders_as_its_snapshots() {
    let mut differ = Vec::new();
    for (fixture, formats) in SNAPSHOTS {
        for format in formats.iter().copied() {
            let name = snapshot_name(fixture, format);
            let text = render(fixture, format);
            if std::panic::catch_unwind(|| assert_snapshot!(name.as_str(), text)).is_err() {
                differ.push(name);
            }
        }
    }
    assert!(differ.is_empty(), "snapshots that differ (diffs above): {differ:?}");
}

// -------------------------------------------------------------- table layout

const FIXTURES: [&str; 5] = ["v1-demo", "failed", "budget", "interrupted", "estimate"];

/// Lines of the table itself (its borders and rows), not the text around it.
fn table_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with(['┌', '│', '╞', '├', '└'])).collect()
}

#[test]
fn the_table_fits_80_columns() {
    for name in FIXTURES {
        let text = table(name, Some(80));
        assert!(!table_lines(&text).is_empty(), "no table in the output for {name}:\n{text}");
        // The table and the lines around it (regressions, breaches, verdict).
        for line in text.lines() {
            let width = line.chars().count();
            assert!(width <= 80, "{name}: a line is {width} characters wide at 80 columns:\n{line}\n\n{text}");
        }
    }
}

/// The lines of the Migration column below the header, top to bottom. The
/// condensed preset draws no line between rows, so rows are told apart by
/// the ids they spell.
fn migration_column(text: &str) -> Vec<String> {
    let cells =
        |line: &str| -> Vec<String> { line.trim_matches('│').split('┆').map(|c| c.trim().to_string()).collect() };
    let lines = table_lines(text);
    let header = lines.iter().find(|l| l.starts_with('│')).expect("a header row");
    let column = cells(header).iter().position(|c| c == "Migration").expect("a Migration column");
    let body = lines.iter().skip_while(|l| !l.starts_with('╞')).filter(|l| l.starts_with('│'));
    body.map(|l| cells(l)[column].clone()).filter(|c| !c.is_empty()).collect()
}

/// Splits the Migration column's lines into one group per id, in order;
/// panics unless each id is spelled by whole lines of the column.
fn pieces_per_id<'a>(column: &'a [String], ids: &[&str], text: &str) -> Vec<Vec<&'a str>> {
    let mut lines = column.iter().map(String::as_str);
    let mut out = Vec::new();
    for id in ids {
        let mut pieces: Vec<&str> = Vec::new();
        while pieces.concat() != *id {
            let next = lines.next().unwrap_or_else(|| panic!("the table ends before {id} does:\n{text}"));
            pieces.push(next);
            assert!(id.starts_with(&pieces.concat()), "{id} is not spelled by its lines {pieces:?}:\n{text}");
        }
        out.push(pieces);
    }
    assert_eq!(lines.next(), None, "the Migration column has more than the ids:\n{text}");
    out
}

fn ids(r: &Report) -> Vec<&str> {
    r.migrations.iter().map(|m| m.id.as_str()).collect()
}

/// Panics unless each id is whole, or split only right after an underscore.
fn assert_ids_break_after_underscores(name: &str, text: &str, ids: &[&str]) {
    let column = migration_column(text);
    for pieces in pieces_per_id(&column, ids, text) {
        for piece in &pieces[..pieces.len() - 1] {
            assert!(
                piece.ends_with('_'),
                "{name}: {} is broken inside a word, after {piece:?}:\n{text}",
                pieces.concat()
            );
        }
    }
}

#[test]
fn ids_break_only_after_an_underscore_at_80_columns() {
    for name in FIXTURES {
        assert_ids_break_after_underscores(name, &table(name, Some(80)), &ids(&fixture(name)));
    }
}

#[test]
#[should_panic(expected = "0002_add_users is broken inside a word")]
fn the_id_check_catches_a_break_inside_a_word() {
    let drawn = "┌───────────┬────┐\n│ Migration ┆ #  │\n╞═══════════╪════╡\n│ 0001_     ┆ 1  │\n│ init      ┆    │\n\
                 │ 0002_add_ ┆ 2  │\n│ us        ┆    │\n│ ers       ┆    │\n└───────────┴────┘\n";
    assert_ids_break_after_underscores("drawn", drawn, &["0001_init", "0002_add_users"]);
}

#[test]
fn without_a_width_every_id_is_whole() {
    for name in FIXTURES {
        let report = fixture(name);
        let text = table(name, None);
        let column = migration_column(&text);
        for pieces in pieces_per_id(&column, &ids(&report), &text) {
            assert_eq!(pieces.len(), 1, "{name}: {} is wrapped with no width limit:\n{text}", pieces.concat());
        }
    }
}

#[test]
#[should_panic(expected = "a machine path (/tmp/) is left")]
fn a_machine_path_left_in_the_output_fails_the_test() {
    redacted("cannot write report /tmp/rehearse-1234/report.md".into());
}

#[test]
fn the_version_redactor_leaves_other_numbers_alone() {
    assert_eq!(replace_token("rehearse 0.1.0, pg 10.1.0", "0.1.0", "[v]"), "rehearse [v], pg 10.1.0");
    assert_eq!(replace_token("0.1.0", "0.1.0", "[v]"), "[v]");
}
