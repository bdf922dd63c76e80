//! Judging a race: how each copy failed (from its exit and its output), how
//! the schema after the race differs from the sequential rehearsal's, and
//! the verdict: `safe` only when every copy exited 0 (the one kill_one
//! killed aside), nothing hung, and the version rows and the schema are
//! what the sequential rehearsal left.

use std::collections::BTreeMap;

use crate::catalog::SchemaObject;
use crate::report::{RaceCopy, RaceFailure, RaceHang, RaceKill, RaceVerdict, VersionState};
use crate::sys::text::{last_lines, one_line};

use super::launch::CopyExit;

/// How much of a copy's output the report keeps: from a few lines before
/// the line naming its error, at most this many.
const OUTPUT_LINES: usize = 12;

/// A copy as the report describes it.
pub struct CopyEnd {
    pub copy: usize,
    pub exit: CopyExit,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub hung: bool,
    pub fresh: bool,
    pub waited_ms: u64,
}

impl CopyEnd {
    pub fn report(self, redact: &dyn Fn(&str) -> String) -> RaceCopy {
        let e = &self.exit;
        let text = format!("{}\n{}", e.stderr.trim_end(), e.stdout.trim_end());
        let failure = failure(e, self.hung);
        let error = match failure {
            None => None,
            Some(RaceFailure::Hung) => Some("still running at the race's deadline: killed".to_string()),
            Some(RaceFailure::Killed) => Some("killed with SIGKILL by kill_one".to_string()),
            Some(_) => e.trouble.clone().or_else(|| error_line(&text)).map(|l| redact(&l)),
        };
        RaceCopy {
            copy: self.copy,
            exit: e.code.filter(|_| !e.killed),
            error,
            failure,
            waited_ms: self.waited_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            killed: e.killed && !self.hung,
            fresh: self.fresh,
            output: redact(&output_tail(text.trim())),
        }
    }
}

/// How a copy failed; None when it exited 0.
fn failure(e: &CopyExit, hung: bool) -> Option<RaceFailure> {
    if hung {
        return Some(RaceFailure::Hung);
    }
    if e.killed {
        return Some(RaceFailure::Killed);
    }
    if e.code == Some(0) {
        return None;
    }
    let text = format!("{}\n{}", e.stderr, e.stdout);
    let unique = text.contains("duplicate key value violates unique constraint");
    Some(if text.contains("deadlock detected") {
        RaceFailure::DeadlockDetected
    } else if text.contains("expected to match one row") {
        RaceFailure::VersionTable
    } else if unique && text.contains("unique constraint \"pg_") {
        // A system catalog's unique index (pg_class_relname_nsp_index): two
        // copies created the same name at once, and the second waited for
        // the first's uncommitted row before it failed. Measured on
        // PostgreSQL 15 with two CREATE INDEX in two transactions.
        RaceFailure::AlreadyExists
    } else if unique {
        RaceFailure::UniqueViolation
    } else if text.contains("already exists") {
        RaceFailure::AlreadyExists
    } else {
        RaceFailure::Failed
    })
}

/// Whether an output line names an error: a Python exception, psql's
/// `ERROR:`, Alembic's `FAILED:` (not SQLAlchemy's trailing link or `[SQL: ...]`).
fn names_an_error(line: &str) -> bool {
    let line = line.trim();
    let lower = line.to_ascii_lowercase();
    (lower.contains("error") || lower.starts_with("failed:") || lower.contains("fatal:"))
        && !line.starts_with("(Background on this error")
        && !line.starts_with('[')
}

/// The copy's error as its output states it: the last line naming an
/// error, without the exception's class; else the last line.
fn error_line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let line = lines.iter().rev().find(|l| names_an_error(l)).or(lines.last())?;
    Some(one_line(&strip_exception_class(line), 300))
}

/// The end of a copy's output that explains it: from three lines before the
/// last line naming an error (the traceback's end, the exception, the
/// statement after it), at most [`OUTPUT_LINES`]; the last lines without one.
fn output_tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.iter().rposition(|l| names_an_error(l)) {
        Some(at) => {
            let from = at.saturating_sub(3);
            lines[from..lines.len().min(from + OUTPUT_LINES)].join("\n")
        }
        None => last_lines(text, OUTPUT_LINES),
    }
}

/// `sqlalchemy.exc.ProgrammingError: (psycopg.errors.DuplicateColumn) column ...`
/// → `column ... (DuplicateColumn)`; `FAILED: ...` → `...`.
fn strip_exception_class(line: &str) -> String {
    let rest = match line.split_once(": ") {
        Some((class, rest)) if !class.contains(' ') => rest,
        _ => line.strip_prefix("FAILED: ").unwrap_or(line),
    };
    if let Some(inner) = rest.strip_prefix('(') {
        if let Some((class, message)) = inner.split_once(") ") {
            let name = class.rsplit('.').next().unwrap_or(class);
            return format!("{message} ({name})");
        }
    }
    rest.to_string()
}

/// Each way the schema after the race differs from the sequential
/// rehearsal's: "index public.orders_total_idx: missing", "column
/// public.t.c: `integer` here, `bigint` after the sequential rehearsal".
pub fn schema_differences(expected: &[SchemaObject], found: &[SchemaObject]) -> Vec<String> {
    let by_name = |list: &[SchemaObject]| -> BTreeMap<(crate::catalog::SchemaKind, String), String> {
        list.iter().map(|o| ((o.kind, o.name.clone()), o.definition.clone())).collect()
    };
    let (expected, found) = (by_name(expected), by_name(found));
    let mut out = Vec::new();
    for ((kind, name), want) in &expected {
        match found.get(&(*kind, name.clone())) {
            None => out.push(format!("{} {name}: missing", kind.as_str())),
            Some(got) if got != want => {
                out.push(format!("{} {name}: `{got}` here, `{want}` after the sequential rehearsal", kind.as_str()))
            }
            Some(_) => {}
        }
    }
    for ((kind, name), got) in &found {
        if !expected.contains_key(&(*kind, name.clone())) {
            out.push(format!("{} {name}: not there after the sequential rehearsal (`{got}`)", kind.as_str()));
        }
    }
    out
}

/// Everything the verdict rests on.
pub struct Evidence<'a> {
    pub copies: &'a [RaceCopy],
    pub hang: Option<&'a RaceHang>,
    pub kill: Option<&'a RaceKill>,
    pub versions: &'a VersionState,
    pub schema_differences: &'a [String],
}

/// The verdict, and why it is `unsafe`.
pub fn judge(e: &Evidence) -> (RaceVerdict, Vec<String>) {
    let mut reasons: Vec<String> = e
        .copies
        .iter()
        .filter(|c| c.failure.is_some_and(|f| f != RaceFailure::Killed && f != RaceFailure::Hung))
        .map(|c| {
            let kind = c.failure.map(|f| f.as_str()).unwrap_or("failed");
            let who = if c.fresh {
                format!("the fresh copy {} (started after the kill)", c.copy)
            } else {
                format!("copy {}", c.copy)
            };
            let exit = c.exit.map(|x| format!("exit {x}")).unwrap_or_else(|| "no exit code".into());
            format!("{who} failed ({exit}, {kind}): {}", c.error.as_deref().unwrap_or("no error message"))
        })
        .collect();
    if let Some(h) = e.hang {
        let hung: Vec<usize> =
            e.copies.iter().filter(|c| c.failure == Some(RaceFailure::Hung)).map(|c| c.copy).collect();
        let cycle = match (h.cycle.is_empty(), h.invisible_to_postgres) {
            (true, _) => String::new(),
            (false, true) => ", in a wait cycle through a client that PostgreSQL's deadlock detector cannot see".into(),
            (false, false) => ", in a wait cycle inside PostgreSQL".into(),
        };
        reasons.push(format!(
            "hang: {} still running after {}{cycle}",
            crate::report::summary::copies_text(&hung),
            crate::report::format_ms(h.after_ms)
        ));
    }
    if let Some(stale) = e.kill.and_then(|k| k.stale_lock.as_ref()) {
        let fresh_failed = e.copies.iter().any(|c| c.fresh && c.failure.is_some());
        if fresh_failed {
            reasons.push(format!(
                "a session of the killed copy (pid {}) outlived it and blocked copy {} for {} ({})",
                stale.pid,
                stale.blocked_copy,
                crate::report::format_ms(stale.blocked_ms),
                stale.wait_event
            ));
        }
    }
    if e.versions.expected != e.versions.found {
        reasons.push(format!(
            "the version rows are [{}] after the race, [{}] after the sequential rehearsal",
            e.versions.found.join(", "),
            e.versions.expected.join(", ")
        ));
    }
    if !e.schema_differences.is_empty() {
        reasons
            .push(format!("the schema differs from the sequential rehearsal's: {}", e.schema_differences.join("; ")));
    }
    let verdict = if reasons.is_empty() { RaceVerdict::Safe } else { RaceVerdict::Unsafe };
    (verdict, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SchemaKind;

    #[test]
    fn errors_are_read_from_the_output_without_the_exception_class() {
        let alembic = "Traceback (most recent call last):\n  File \"x\", line 1\nsqlalchemy.exc.ProgrammingError: (psycopg.errors.DuplicateColumn) column \"channel\" of relation \"orders\" already exists\n[SQL: ALTER TABLE orders ADD COLUMN channel TEXT]\n(Background on this error at: https://sqlalche.me/e/21/f405)\n";
        assert_eq!(
            error_line(alembic).unwrap(),
            "column \"channel\" of relation \"orders\" already exists (DuplicateColumn)"
        );
        let moved = "FAILED: Online migration expected to match one row when updating 'r2' to 'r3' in 'alembic_version'; 0 found\n";
        assert!(error_line(moved).unwrap().starts_with("Online migration expected to match one row"));
        assert_eq!(error_line("psql:up.sql:3: ERROR:  deadlock detected\n").unwrap(), "ERROR: deadlock detected");
        let exit = CopyExit { code: Some(1), stderr: moved.into(), ..CopyExit::default() };
        assert_eq!(failure(&exit, false), Some(RaceFailure::VersionTable));
        let catalog = "sqlalchemy.exc.IntegrityError: (psycopg.errors.UniqueViolation) duplicate key value violates unique constraint \"pg_class_relname_nsp_index\"\nDETAIL:  Key (relname, relnamespace)=(events_kind_occurred_at_idx, 2200) already exists.\n";
        let exit = CopyExit { code: Some(1), stderr: catalog.into(), ..CopyExit::default() };
        assert_eq!(failure(&exit, false), Some(RaceFailure::AlreadyExists));
        let version = "duplicate key value violates unique constraint \"alembic_version_pkc\"";
        let exit = CopyExit { code: Some(1), stderr: version.into(), ..CopyExit::default() };
        assert_eq!(failure(&exit, false), Some(RaceFailure::UniqueViolation));
        let ok = CopyExit { code: Some(0), ..CopyExit::default() };
        assert_eq!((failure(&ok, false), failure(&ok, true)), (None, Some(RaceFailure::Hung)));
    }

    #[test]
    fn the_output_kept_starts_before_the_error_even_when_a_long_statement_follows_it() {
        let mut text =
            String::from("Traceback\n  File a\n  File b\n  File c\nsqlalchemy.exc.IntegrityError: boom\n[SQL: \n");
        text.push_str(&"  column,\n".repeat(30));
        let tail = output_tail(&text);
        assert!(tail.starts_with("  File a\n") && tail.contains("IntegrityError: boom"), "{tail}");
        assert_eq!(tail.lines().count(), OUTPUT_LINES);
        assert_eq!(output_tail("one\ntwo\n"), "one\ntwo");
    }

    #[test]
    fn schema_differences_name_what_is_missing_extra_or_changed() {
        let o = |kind, name: &str, def: &str| SchemaObject { kind, name: name.into(), definition: def.into() };
        let expected = [
            o(SchemaKind::Column, "public.t.c", "bigint"),
            o(SchemaKind::Index, "public.i", "CREATE INDEX i ON public.t USING btree (c)"),
        ];
        let found = [o(SchemaKind::Column, "public.t.c", "integer"), o(SchemaKind::Table, "public.x", "table")];
        assert_eq!(
            schema_differences(&expected, &found),
            [
                "column public.t.c: `integer` here, `bigint` after the sequential rehearsal",
                "index public.i: missing",
                "table public.x: not there after the sequential rehearsal (`table`)",
            ]
        );
    }
}
