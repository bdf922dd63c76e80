//! Judging a race: how each copy failed (from its exit and its output), how
//! the schema after the race differs from the sequential rehearsal's,
//! whether the copies met, and the verdict: `unsafe` when a copy failed
//! (the one kill_one killed aside), hung, or the version rows or the schema
//! are not what the sequential rehearsal left; otherwise `inconclusive` when
//! the race proved nothing (the copies never met, a copy failed while
//! rehearse held it at the barrier, nothing was pending), else `safe`.

use std::collections::BTreeMap;

use crate::catalog::SchemaObject;
use crate::report::summary::{and_list, copies_text};
use crate::report::{
    format_ms, BarrierRelease, RaceBarrier, RaceCopy, RaceFailure, RaceHang, RaceKill, RaceVerdict, VersionState,
};
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
    pub first_seen_ms: Option<u64>,
    pub last_seen_ms: Option<u64>,
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
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
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
    pub barrier: &'a RaceBarrier,
    /// How many migrations the sequential rehearsal applied.
    pub applied: usize,
}

/// The verdict, and why it is `unsafe` or `inconclusive`. A failure is
/// proof whatever else happened; a race with none proves something only if
/// the copies met.
pub fn judge(e: &Evidence) -> (RaceVerdict, Vec<String>) {
    let reasons = unsafe_reasons(e);
    if !reasons.is_empty() {
        return (RaceVerdict::Unsafe, reasons);
    }
    let reasons = inconclusive_reasons(e);
    match reasons.is_empty() {
        true => (RaceVerdict::Safe, reasons),
        false => (RaceVerdict::Inconclusive, reasons),
    }
}

fn unsafe_reasons(e: &Evidence) -> Vec<String> {
    let mut reasons: Vec<String> = e
        .copies
        .iter()
        .filter(|c| c.failure.is_some_and(|f| f != RaceFailure::Killed && f != RaceFailure::Hung))
        .filter(|c| !e.barrier.failed_at_barrier.contains(&c.copy))
        .map(|c| {
            let kind = c.failure.map(|f| f.in_words()).unwrap_or("failed");
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
        reasons.push(format!("hang: {} still running after {}{cycle}", copies_text(&hung), format_ms(h.after_ms)));
    }
    if let Some(stale) = e.kill.and_then(|k| k.stale_lock.as_ref()) {
        let fresh_failed = e.copies.iter().any(|c| c.fresh && c.failure.is_some());
        if fresh_failed {
            reasons.push(format!(
                "a session of the killed copy (pid {}) outlived it and blocked copy {} for {} ({})",
                stale.pid,
                stale.blocked_copy,
                format_ms(stale.blocked_ms),
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
    reasons
}

/// Why a race in which nothing went wrong still proved nothing.
fn inconclusive_reasons(e: &Evidence) -> Vec<String> {
    let mut reasons = Vec::new();
    if e.applied == 0 {
        reasons.push(
            "nothing was pending: the sequential rehearsal applied no migration, so the copies had nothing to race on"
                .to_string(),
        );
    }
    for c in e.copies.iter().filter(|c| e.barrier.failed_at_barrier.contains(&c.copy)) {
        reasons.push(format!(
            "copy {} failed while rehearse held it at the barrier, waiting for the other copies to start: {} (a \
             lock_timeout or statement_timeout its tool sets, shorter than the copies' start-up; production's \
             replicas would not have waited there)",
            c.copy,
            c.error.as_deref().unwrap_or("no error message")
        ));
    }
    if let Some(missed) = not_met(e.copies, e.barrier) {
        reasons.push(missed);
    }
    reasons
}

/// When every replica (not kill_one's fresh copy) was first at the database
/// at once, from the watch's readings: the latest first sighting, if it
/// came before the earliest last one. None when one was never seen.
pub fn met(copies: &[RaceCopy]) -> Option<u64> {
    let spans: Vec<(u64, u64)> =
        copies.iter().filter(|c| !c.fresh).map(|c| Some((c.first_seen_ms?, c.last_seen_ms?))).collect::<Option<_>>()?;
    let arrived = spans.iter().map(|s| s.0).max()?;
    let left = spans.iter().map(|s| s.1).min()?;
    (arrived <= left).then_some(arrived)
}

/// "the copies never met: copy 1 was done with the database (last seen at
/// 1.2s) before copies 2 and 3 reached it (first seen at 3.4s and 3.6s)";
/// None when they met.
fn not_met(copies: &[RaceCopy], barrier: &RaceBarrier) -> Option<String> {
    if met(copies).is_some() {
        return None;
    }
    let replicas: Vec<&RaceCopy> = copies.iter().filter(|c| !c.fresh).collect();
    let mut parts = Vec::new();
    let seen = replicas.iter().filter_map(|c| Some((c.copy, c.first_seen_ms?, c.last_seen_ms?)));
    if let Some((first, _, left)) = seen.clone().min_by_key(|s| s.2) {
        let late: Vec<(usize, u64)> = seen.filter(|s| s.1 > left).map(|s| (s.0, s.1)).collect();
        if !late.is_empty() {
            let at: Vec<String> = late.iter().map(|l| format_ms(l.1)).collect();
            let late: Vec<usize> = late.iter().map(|l| l.0).collect();
            parts.push(format!(
                "copy {first} was done with the database (last seen at {}) before {} reached it (first seen at {})",
                format_ms(left),
                copies_text(&late),
                and_list(&at)
            ));
        }
    }
    let unseen: Vec<usize> = replicas.iter().filter(|c| c.first_seen_ms.is_none()).map(|c| c.copy).collect();
    if !unseen.is_empty() {
        parts.push(format!("no session of {} was ever seen (the server is read every 50ms)", copies_text(&unseen)));
    }
    match barrier.release {
        BarrierRelease::NotHeld => {
            parts.push("no barrier held them: the race's database has no version table to hold".into())
        }
        BarrierRelease::Patience | BarrierRelease::TimeoutSetting if !barrier.missing.is_empty() => {
            parts.push(format!(
                "the barrier let the copies go at {} without {}, still starting",
                barrier.released_ms.map(format_ms).unwrap_or_else(|| "-".into()),
                copies_text(&barrier.missing)
            ))
        }
        _ => {}
    }
    Some(format!("the copies never met: {}", parts.join("; ")))
}

/// The copies that failed, and when they ended: those that did before the
/// barrier's release may have failed at it.
pub fn failed_when(copies: &[RaceCopy]) -> Vec<(usize, std::time::Duration)> {
    copies
        .iter()
        .filter(|c| c.failure.is_some_and(|f| f != RaceFailure::Killed && f != RaceFailure::Hung))
        .filter_map(|c| Some((c.copy, std::time::Duration::from_millis(c.finished_ms?))))
        .collect()
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

    fn copy(n: usize, exit: i32, seen: Option<(u64, u64)>) -> RaceCopy {
        RaceCopy {
            copy: n,
            exit: Some(exit),
            error: (exit != 0).then(|| "canceling statement due to lock timeout (LockNotAvailable)".into()),
            failure: (exit != 0).then_some(RaceFailure::Failed),
            waited_ms: 0,
            started_ms: 0,
            finished_ms: Some(seen.map_or(100, |s| s.1 + 50)),
            first_seen_ms: seen.map(|s| s.0),
            last_seen_ms: seen.map(|s| s.1),
            killed: false,
            fresh: false,
            output: String::new(),
        }
    }

    fn barrier(release: BarrierRelease, missing: &[usize], failed_at_barrier: &[usize]) -> RaceBarrier {
        RaceBarrier {
            tables: vec!["public.alembic_version".into()],
            release,
            released_ms: Some(15_000),
            arrived: Vec::new(),
            missing: missing.to_vec(),
            failed_at_barrier: failed_at_barrier.to_vec(),
        }
    }

    fn judged(copies: &[RaceCopy], barrier: &RaceBarrier, applied: usize) -> (RaceVerdict, Vec<String>) {
        let versions = VersionState { expected: vec!["r4".into()], found: vec!["r4".into()] };
        let e =
            Evidence { copies, hang: None, kill: None, versions: &versions, schema_differences: &[], barrier, applied };
        judge(&e)
    }

    #[test]
    fn copies_that_were_at_the_database_together_met_and_a_clean_race_is_safe() {
        let copies = [copy(1, 0, Some((900, 2000))), copy(2, 0, Some((1200, 1500))), copy(3, 0, Some((1400, 1600)))];
        assert_eq!(met(&copies), Some(1400));
        let held = barrier(BarrierRelease::AllArrived, &[], &[]);
        assert_eq!(judged(&copies, &held, 2), (RaceVerdict::Safe, Vec::new()));
        let (verdict, reasons) = judged(&copies, &held, 0);
        assert_eq!(verdict, RaceVerdict::Inconclusive);
        assert!(reasons[0].starts_with("nothing was pending"), "{reasons:?}");
    }

    #[test]
    fn copies_that_never_met_are_inconclusive_with_who_left_before_whom() {
        let copies = [copy(1, 0, Some((900, 1200))), copy(2, 0, Some((3400, 3500))), copy(3, 0, None)];
        assert_eq!(met(&copies), None);
        let (verdict, reasons) = judged(&copies, &barrier(BarrierRelease::Patience, &[2, 3], &[]), 2);
        assert_eq!(verdict, RaceVerdict::Inconclusive);
        assert_eq!(
            reasons,
            ["the copies never met: copy 1 was done with the database (last seen at 1.2s) before copy 2 reached it \
              (first seen at 3.4s); no session of copy 3 was ever seen (the server is read every 50ms); the barrier let \
              the copies go at 15.0s without copies 2 and 3, still starting"]
        );
    }

    #[test]
    fn a_failure_is_unsafe_even_unmet_but_a_failure_at_the_barrier_is_rehearse_s_doing() {
        let copies = [copy(1, 1, Some((900, 1200))), copy(2, 0, Some((3400, 3500)))];
        let (verdict, reasons) = judged(&copies, &barrier(BarrierRelease::AllArrived, &[], &[]), 2);
        assert_eq!((verdict, reasons.len()), (RaceVerdict::Unsafe, 1), "{reasons:?}");
        assert!(reasons[0].starts_with("copy 1 failed (exit 1, failed)"), "{reasons:?}");
        let (verdict, reasons) = judged(&copies, &barrier(BarrierRelease::AllArrived, &[], &[1]), 2);
        assert_eq!(verdict, RaceVerdict::Inconclusive);
        assert!(reasons[0].starts_with("copy 1 failed while rehearse held it at the barrier"), "{reasons:?}");
        assert!(reasons[1].starts_with("the copies never met"), "{reasons:?}");
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
