//! `junit.xml`: the report as JUnit XML, so CI systems (GitHub, GitLab,
//! Jenkins) show each migration as a test case.
//!
//! Two suites: `<scenario>: run` with one case for the run as a whole
//! (failing whenever the verdict is not a pass: a stage that stopped, the
//! migration that failed, every breach; regressions in its output) and,
//! with `race:`, one for the race of replicas (failing when it was unsafe
//! or inconclusive under `fail_on_race`), first
//! so a reader meets the regressions first; then `<scenario>: migrations`
//! with one case per migration, failing for an error, a timeout, an
//! interruption, a budget breach, or a regression under `fail_on_regression`.
//!
//! Written by hand rather than with an XML crate: the output is a handful
//! of elements, and the one thing that needs care — escaping text and
//! attributes, and dropping characters XML 1.0 cannot carry — is below.

use std::fmt::Write;

use super::summary::{self, verdict};
use super::{format_bytes, format_ms, MigrationReport, MigrationStatus, RaceVerdict, Report, RunStatus};

pub fn render(r: &Report) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let cases: Vec<Case> = r.migrations.iter().map(|m| migration_case(r, m)).collect();
    let run: Vec<Case> =
        std::iter::once(run_case(r)).chain(race_case(r)).chain(drift_case(r)).chain(abort_cases(r)).collect();
    let rollback = rollback_cases(r);
    let failures = cases.iter().chain(&run).chain(&rollback).filter(|c| c.failure.is_some()).count();
    let skipped = cases.iter().chain(&rollback).filter(|c| c.skipped.is_some()).count();
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">",
        attr(&format!("rehearse: {}", r.scenario)),
        cases.len() + run.len() + rollback.len(),
        seconds(r.totals.run_duration_ms)
    );
    suite(&mut x, r, "run", &run, r.totals.run_duration_ms);
    suite(&mut x, r, "migrations", &cases, r.totals.duration_ms);
    if let Some(b) = &r.rollback {
        suite(&mut x, r, "rollback", &rollback, b.migrations.iter().map(|m| m.duration_ms).sum());
    }
    x.push_str("</testsuites>\n");
    x
}

struct Case {
    name: String,
    classname: String,
    /// None for a migration that did not run: it has no time to show.
    time_ms: Option<u64>,
    /// (type, message, body).
    failure: Option<(String, String, String)>,
    skipped: Option<String>,
    out: String,
}

fn suite(x: &mut String, r: &Report, name: &str, cases: &[Case], time_ms: u64) {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let skipped = cases.iter().filter(|c| c.skipped.is_some()).count();
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\" timestamp=\"{}\">",
        attr(&format!("{}: {name}", r.scenario)),
        cases.len(),
        seconds(time_ms),
        attr(r.started_at.trim_end_matches('Z'))
    );
    for c in cases {
        let time = c.time_ms.map(|ms| format!(" time=\"{}\"", seconds(ms))).unwrap_or_default();
        let _ = writeln!(x, "    <testcase name=\"{}\" classname=\"{}\"{time}>", attr(&c.name), attr(&c.classname));
        if let Some((kind, message, body)) = &c.failure {
            let _ = writeln!(
                x,
                "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                attr(kind),
                attr(message),
                text(body)
            );
        }
        if let Some(message) = &c.skipped {
            let _ = writeln!(x, "      <skipped message=\"{}\"/>", attr(message));
        }
        if !c.out.is_empty() {
            let _ = writeln!(x, "      <system-out>{}</system-out>", text(&c.out));
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n");
}

fn migration_case(r: &Report, m: &MigrationReport) -> Case {
    let fail_on_regression = r.budgets.fail_on_regression;
    let regressions: Vec<String> = r
        .baseline
        .iter()
        .flat_map(|b| b.regressions.iter().filter(|g| g.id == m.id))
        .map(|g| format!("regression: {}", g.message))
        .collect();
    let mut problems: Vec<String> = Vec::new();
    let error = m.error.as_ref().map(|e| {
        let at = match (&e.file, e.line) {
            (Some(f), Some(l)) => format!("\nat {f} line {l}"),
            _ => String::new(),
        };
        let stmt = e.statement.as_ref().map(|s| format!("\nstatement: {s}")).unwrap_or_default();
        format!("{}{at}{stmt}", e.message)
    });
    let kind = match m.status {
        MigrationStatus::Failed => "migration_failed",
        MigrationStatus::TimedOut => "timed_out",
        MigrationStatus::Interrupted => "interrupted",
        _ if !m.budget_breaches.is_empty() => "budget_exceeded",
        _ if fail_on_regression && !regressions.is_empty() => "regression",
        _ => "",
    };
    // The message attribute is the first problem: the error of a failed
    // migration, the breach (with its figures) of one over budget or timed out.
    let error_first = matches!(m.status, MigrationStatus::Failed | MigrationStatus::Interrupted);
    problems.extend(error.iter().filter(|_| error_first).cloned());
    problems.extend(m.budget_breaches.iter().cloned());
    if fail_on_regression {
        problems.extend(regressions.iter().cloned());
    }
    problems.extend(error.iter().filter(|_| !error_first).cloned());
    let figures = format!(
        "time {}, WAL {}, longest block of reads {}, of writes {}",
        format_ms(m.duration_ms),
        format_bytes(m.wal.bytes),
        summary::block_text(&m.longest_read_block),
        summary::block_text(&m.longest_write_block)
    );
    let mut out = match m.ran() {
        true => vec![format!("{}: {}", m.status.as_str(), figures)],
        false => vec![format!("{}: not run", m.status.as_str())],
    };
    out.extend(m.hazards.iter().map(|h| format!("hazard {}: {}", h.rule, h.message)));
    // Under fail_on_incompatible they are a breach, so the failure says it.
    let broken = m.compat.iter().flat_map(|c| &c.broken);
    out.extend(broken.map(|b| format!("breaks a query of the running app: {}", summary::broken_line(b, 200, false))));
    if !fail_on_regression {
        out.extend(regressions);
    }
    // CI test views group cases by classname: one group per app.
    let classname = match &m.app {
        Some(app) => format!("rehearse.{}.{app}", r.scenario),
        None => format!("rehearse.{}", r.scenario),
    };
    Case {
        name: m.id.clone(),
        classname,
        time_ms: m.ran().then_some(m.duration_ms),
        failure: (!kind.is_empty()).then(|| {
            let message = problems.first().cloned().unwrap_or_else(|| m.status.as_str().into());
            (kind.to_string(), first_line(&message), format!("{}\n{figures}", problems.join("\n")))
        }),
        skipped: (m.status == MigrationStatus::Skipped)
            .then(|| "not run: an earlier migration did not complete".to_string()),
        out: out.join("\n"),
    }
}

/// The run as a whole: failing whenever its verdict is not a pass, its
/// message the reason (the stage that stopped, the interruption, the
/// migration that failed, or the first breach), every breach in the body.
fn run_case(r: &Report) -> Case {
    let stage = r.stopped_at_stage.map(|s| s.as_str()).unwrap_or("the run");
    let failed = summary::failed(r).map(summary::failed_line);
    let (kind, mut problems) = match (&r.error, r.status) {
        (Some(e), _) => ("run_failed", vec![format!("stopped during {stage}: {e}")]),
        (None, RunStatus::Interrupted) => ("interrupted", vec![format!("interrupted during {stage}")]),
        (None, RunStatus::Failed) => ("migration_failed", Vec::new()),
        _ => ("budget_exceeded", Vec::new()),
    };
    problems.extend(failed);
    problems.extend(summary::breach_lines(r, false));
    let mut out = vec![verdict(r)];
    if let Some(heading) = summary::baseline_heading(r) {
        out.push(heading);
        out.extend(summary::regression_lines(r, false).into_iter().map(|l| format!("- {l}")));
    }
    if let Some(m) = summary::riskiest(r) {
        out.push(format!("riskiest migration: {}", summary::riskiest_line(m, false)));
    }
    out.extend(summary::unused_overrides_line(r, false));
    let failure = (r.status != RunStatus::Passed).then(|| {
        let message = problems.first().cloned().unwrap_or_else(|| verdict(r));
        (kind.to_string(), first_line(&message), problems.join("\n"))
    });
    Case {
        name: "run".into(),
        classname: format!("rehearse.{}", r.scenario),
        time_ms: Some(r.totals.run_duration_ms),
        failure,
        skipped: None,
        out: out.join("\n"),
    }
}

/// The drift check (`drift:`): failing when it found a difference under
/// `fail_on_drift`, or when the history could not be built; the findings
/// in the output either way.
fn drift_case(r: &Report) -> Option<Case> {
    let drift = r.drift.as_ref()?;
    let line = summary::drift_line(drift);
    let findings: Vec<String> = drift
        .findings
        .iter()
        .map(|f| format!("- {} {} ({}): {}", f.kind, f.object, f.cause.in_words(), f.likely))
        .collect();
    let failure = match (&drift.error, r.budgets.fail_on_drift && !findings.is_empty()) {
        (Some(error), _) => Some(("drift_build_failed".to_string(), line.clone(), error.clone())),
        (None, true) => Some(("drift".to_string(), line.clone(), findings.join("\n"))),
        (None, false) => None,
    };
    Some(Case {
        name: "drift".into(),
        classname: format!("rehearse.{}", r.scenario),
        time_ms: Some(drift.build_ms),
        failure,
        skipped: None,
        out: std::iter::once(line).chain(findings).collect::<Vec<_>>().join("\n"),
    })
}

/// One case per abort (`abort:`): failing when the recovery was not
/// proved (the schema not back, or the migration not running again).
fn abort_cases(r: &Report) -> Vec<Case> {
    r.abort
        .iter()
        .map(|a| {
            let line = a.line(false);
            let out: Vec<String> = std::iter::once(line.clone()).chain(a.recovery.iter().cloned()).collect();
            Case {
                name: format!("abort {}", a.migration),
                classname: format!("rehearse.{}", r.scenario),
                time_ms: None,
                failure: (!a.proved()).then(|| ("abort_not_recovered".to_string(), line, out.join("\n"))),
                skipped: None,
                out: out.join("\n"),
            }
        })
        .collect()
}

/// The rollback (`rollback:`): one case per rollback migration (failing
/// as a release's does), then one for what it restored, failing when a
/// query of the previous app version still fails or the schema did not
/// come back; skipped when the release did not apply whole.
fn rollback_cases(r: &Report) -> Vec<Case> {
    let Some(b) = &r.rollback else { return Vec::new() };
    // Named apart from the release's cases: a downgrade's ids are the release's.
    let named = |m: &MigrationReport| Case { name: format!("rollback {}", m.id), ..migration_case(r, m) };
    let mut cases: Vec<Case> = b.migrations.iter().map(named).collect();
    let mut problems: Vec<String> = b.still_broken.iter().map(|q| format!("- still broken: {}", q.query)).collect();
    problems.extend(b.schema_diff.iter().map(|d| format!("- {} {}: {}", d.kind, d.object, d.change.in_words())));
    let mut out = vec![b.line()];
    out.extend(problems.iter().cloned());
    out.extend(b.data_loss.iter().map(|d| d.line()));
    let failing = b.skipped.is_none() && b.failed().is_none() && !problems.is_empty();
    cases.push(Case {
        name: "rollback".into(),
        classname: format!("rehearse.{}", r.scenario),
        time_ms: None,
        failure: failing.then(|| ("rollback_not_restored".to_string(), b.line(), problems.join("\n"))),
        skipped: b.skipped.clone(),
        out: out.join("\n"),
    });
    cases
}

/// The race of replicas (`race:`): failing when it was unsafe or
/// inconclusive under `fail_on_race`, its verdict and reasons in the output either way.
fn race_case(r: &Report) -> Option<Case> {
    let race = r.race.as_ref()?;
    let line = summary::race_line(race, false);
    let mut out = vec![line.clone()];
    out.extend(race.reasons.iter().map(|reason| format!("- {reason}")));
    let failing = r.budgets.fail_on_race && race.verdict != RaceVerdict::Safe;
    Some(Case {
        name: "race".into(),
        classname: format!("rehearse.{}", r.scenario),
        time_ms: Some(race.duration_ms),
        failure: failing.then(|| (format!("race_{}", race.verdict.as_str()), line, race.reasons.join("\n"))),
        skipped: None,
        out: out.join("\n"),
    })
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Characters XML 1.0 allows: tab, newline, carriage return, and from space
/// up, less U+FFFE and U+FFFF. Others (a NUL in an error message) become U+FFFD.
fn allowed(c: char) -> char {
    match c {
        '\t' | '\n' | '\r' => c,
        c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
        c => c,
    }
}

/// Element text: `&` and `<` must be escaped, `>` too so `]]>` cannot appear.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(allowed) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Attribute values (double-quoted): also quotes, and whitespace as
/// character references, since parsers turn a literal newline into a space.
pub fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(allowed) {
        match c {
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push_str(&text(&c.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_forbidden_characters() {
        assert_eq!(text("a < b && c > d ]]>"), "a &lt; b &amp;&amp; c &gt; d ]]&gt;");
        assert_eq!(attr("say \"hi\"\nit's"), "say &quot;hi&quot;&#10;it&apos;s");
        assert_eq!(text("nul\u{0}bell\u{7}"), "nul\u{FFFD}bell\u{FFFD}");
        assert_eq!(seconds(1234), "1.234");
        assert_eq!(seconds(5), "0.005");
    }
}
