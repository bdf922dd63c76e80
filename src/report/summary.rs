//! What every format shows first: the verdict, the riskiest migration, the
//! budget breaches, and the regressions against the baseline — plain text lines,
//! which each writer decorates.

use super::{
    count, format_bytes, format_ms, range_ms, AdvisoryLockKind, BrokenQuery, CompatInfo, DriftCause, DriftReport,
    MigrationReport, MigrationStatus, RaceFailure, RaceLock, RaceReport, RaceVerdict, Report, RunStatus,
};

/// One line saying how the run ended, for the terminal, the Markdown and JUnit.
pub fn verdict(report: &Report) -> String {
    let t = &report.totals;
    let timed_out = if t.timed_out > 0 { format!(", {} timed out", t.timed_out) } else { String::new() };
    let interrupted = if t.interrupted > 0 { format!(", {} interrupted", t.interrupted) } else { String::new() };
    let mut summary = format!(
        "{} applied, {} failed{timed_out}{interrupted}, {} skipped; migrations took {}, wrote {} of WAL",
        t.applied,
        t.failed,
        t.skipped,
        format_ms(t.duration_ms),
        format_bytes(t.wal_bytes)
    );
    if let Some(e) = &t.estimate {
        summary.push_str(&format!("; at production scale about {}", range_ms(e.duration_ms)));
        summary.push_str(&production_limits(report));
    }
    if let Some(b) = &report.baseline {
        summary.push_str(&format!("; {} regression(s) against the baseline", b.regressions.len()));
    }
    match broken_by_release(report) {
        0 => {}
        n => summary.push_str(&format!("; breaks {} of the running app", queries(n))),
    }
    if let Some(race) = &report.race {
        summary.push_str(&format!("; race of {} replicas: {}", race.replicas, race.verdict.as_str()));
    }
    if let Some(drift) = &report.drift {
        summary.push_str(&match (&drift.error, drift.findings.len()) {
            (Some(_), _) => "; drift: the history could not be built from empty".to_string(),
            (None, 0) => "; no drift from the history".to_string(),
            (None, n) => format!("; drift: {n} difference{} from the history", if n == 1 { "" } else { "s" }),
        });
    }
    let stage = report.stopped_at_stage.map(|s| s.as_str()).unwrap_or("the run");
    match report.status {
        RunStatus::Passed => format!("PASSED: {summary}."),
        RunStatus::BudgetExceeded => format!("BUDGET EXCEEDED: {summary}."),
        RunStatus::Failed => match &report.error {
            Some(e) => format!("FAILED during {stage}: {}", e.lines().next().unwrap_or("")),
            None => format!("FAILED: {summary}."),
        },
        RunStatus::Interrupted => format!("INTERRUPTED during {stage}: {summary}."),
    }
}

/// "; 1 statement over production's statement_timeout at scale (1 cancelled
/// there), 1 sort or hash spilling to disk": what the estimate found
/// against production's limits, empty when nothing.
fn production_limits(report: &Report) -> String {
    let estimates = || report.migrations.iter().filter_map(|m| m.estimate.as_ref());
    let over: Vec<_> = estimates().flat_map(|e| &e.over_statement_timeout).collect();
    let spills = estimates().map(|e| e.spills.len()).sum::<usize>();
    let mut out = String::new();
    if !over.is_empty() {
        let cancelled = over.iter().filter(|o| o.fails).count();
        out.push_str(&format!(
            "; {} over production's statement_timeout at scale ({cancelled} cancelled there)",
            count(over.len(), "statement", "statements")
        ));
    }
    if spills > 0 {
        out.push_str(&format!(
            "; {} spilling to disk at production's size",
            count(spills, "sort or hash", "sorts or hashes")
        ));
    }
    out
}

/// The migration most likely to hurt production: one cancelled at its
/// deadline first, then by the longest hold of a lock that blocks the app,
/// then by hazards, then by time.
pub fn riskiest(r: &Report) -> Option<&MigrationReport> {
    r.migrations
        .iter()
        .filter(|m| m.ran())
        .max_by_key(|m| (m.status == MigrationStatus::TimedOut, m.longest_block(), m.hazards.len(), m.duration_ms))
}

/// The migration that failed, if one did: a failed run names it first.
pub fn failed(r: &Report) -> Option<&MigrationReport> {
    r.migrations.iter().find(|m| m.status == MigrationStatus::Failed)
}

/// "migration 0008_fk failed: insert or update on table \"events\" violates ...".
pub fn failed_line(m: &MigrationReport) -> String {
    format!("migration {} failed: {}", m.id, first_error_line(m))
}

/// The first line of a migration's error (Postgres's message), or "".
pub fn first_error_line(m: &MigrationReport) -> &str {
    m.error.as_ref().and_then(|e| e.message.lines().next()).unwrap_or("")
}

/// "budgets.overrides: 0099_typo is not a rehearsed migration (a mistyped
/// id, or one production has applied since); its limits applied to nothing", or None.
pub fn unused_overrides_line(r: &Report, code: bool) -> Option<String> {
    let unused = &r.budgets.unused_overrides;
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_string() };
    let (is, them) = match unused.len() {
        0 => return None,
        1 => ("is not a rehearsed migration", "its limits"),
        _ => ("are not rehearsed migrations", "their limits"),
    };
    let ids: Vec<String> = unused.iter().map(|u| q(u)).collect();
    Some(format!(
        "{}: {} {is} (a mistyped id, or one production has applied since); {them} applied to nothing",
        q("budgets.overrides"),
        ids.join(", ")
    ))
}

/// "`0007_x` (applied): blocks reads and writes of public.order_items for 1.5s (AccessExclusiveLock); 2 hazards: ...; took 1.5s."
pub fn riskiest_line(m: &MigrationReport, code: bool) -> String {
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_string() };
    let mut parts = Vec::new();
    if m.status == MigrationStatus::TimedOut {
        parts.push(format!("cancelled at its max_runtime after {}", format_ms(m.duration_ms)));
    }
    match longest_block_of(m) {
        Some((b, what)) => {
            parts.push(format!("blocks {what} of {} for {} ({})", b.relation, format_ms(b.held_ms), b.mode))
        }
        None => parts.push("blocks no reads or writes of existing tables".into()),
    }
    if !m.hazards.is_empty() {
        parts.push(format!("{} hazard(s): {}", m.hazards.len(), super::hazards::migration_rule_counts(m)));
    }
    if m.status != MigrationStatus::TimedOut {
        parts.push(format!("took {}", format_ms(m.duration_ms)));
    }
    let mut line = format!("{} ({}): {}.", q(&m.id), m.status.as_str(), parts.join("; "));
    if let Some(h) = m.hazards.first() {
        line.push_str(&format!(" Fix: {}.", h.fix.trim_end_matches('.')));
    }
    line
}

/// The longest hold that blocks the app, and what it blocks; a lock that
/// blocks reads (and so writes too) wins a tie.
pub fn longest_block_of(m: &MigrationReport) -> Option<(&super::BlockReport, &'static str)> {
    [(&m.longest_write_block, "writes"), (&m.longest_read_block, "reads and writes")]
        .into_iter()
        .filter_map(|(b, what)| b.as_ref().map(|b| (b, what)))
        .max_by_key(|(b, _)| b.held_ms)
}

/// Every budget breach, migrations' first, each prefixed with its migration.
pub fn breach_lines(r: &Report, code: bool) -> Vec<String> {
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_string() };
    let mut out: Vec<String> =
        r.migrations.iter().flat_map(|m| m.budget_breaches.iter().map(move |b| format!("{}: {b}", q(&m.id)))).collect();
    out.extend(r.budget_breaches.iter().map(|b| format!("run: {b}")));
    out
}

/// The regressions, then the new and vanished migrations; empty without a baseline.
pub fn regression_lines(r: &Report, code: bool) -> Vec<String> {
    let Some(b) = &r.baseline else { return Vec::new() };
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_string() };
    let mut out: Vec<String> = b.regressions.iter().map(|g| format!("{}: {}", q(&g.id), g.message)).collect();
    if !b.new.is_empty() {
        out.push(format!("new since the baseline: {}", b.new.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ")));
    }
    if !b.vanished.is_empty() {
        out.push(format!(
            "gone since the baseline: {}",
            b.vanished.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

/// "against reports/previous.json (demo, 2026-11-23T01:00:00Z): 1 regression (+25% and at least 1.0s / 16.0 MB)".
pub fn baseline_heading(r: &Report) -> Option<String> {
    let b = r.baseline.as_ref()?;
    let t = &b.thresholds;
    Some(format!(
        "{} regression(s) against the baseline {} ({}, {}); a regression is more than +{}% and at least {} (time, locks) or {} (WAL)",
        b.regressions.len(),
        b.path,
        b.scenario,
        b.started_at.as_deref().unwrap_or("?"),
        t.percent,
        format_ms(t.min_time_ms),
        super::format_bytes(t.min_wal_bytes)
    ))
}

/// "1.6s public.orders", or "-" when nothing the app uses was blocked.
pub fn block_text(b: &Option<super::BlockReport>) -> String {
    match b {
        Some(b) => format!("{} {}", format_ms(b.held_ms), b.relation),
        None => "-".into(),
    }
}

/// "`SELECT …` (42883 function repeat(unknown, bigint) does not exist)": a
/// broken query on one line, cut at `max` characters.
pub fn broken_line(b: &BrokenQuery, max: usize, code: bool) -> String {
    let query = crate::sys::text::one_line(&b.query, max);
    let query = if code { format!("`{}`", query.replace('`', "'")) } else { query };
    format!("{query} ({} {})", b.code, b.message)
}

/// "1 query", "3 queries".
pub fn queries(n: usize) -> String {
    count(n, "query", "queries")
}

/// How many queries of the running app the migrations broke, in all.
pub fn broken_by_release(r: &Report) -> usize {
    r.migrations.iter().filter_map(|m| m.compat.as_ref()).map(|c| c.broken.len()).sum()
}

/// "1 utility statement ignored, 2 statements whose normalized text is not SQL ignored", or None.
pub fn ignored_statements(info: &CompatInfo) -> Option<String> {
    let mut ignored = Vec::new();
    if info.ignored_utility > 0 {
        ignored.push(format!("{} ignored", count(info.ignored_utility, "utility statement", "utility statements")));
    }
    if info.ignored_unparsable > 0 {
        let n = count(info.ignored_unparsable, "statement", "statements");
        ignored.push(format!("{n} whose normalized text is not SQL ignored"));
    }
    (!ignored.is_empty()).then(|| ignored.join(", "))
}

/// How the migration tool ran, for the report's readers: "Rehearsed as Job
/// `x` (container `y`), image `z` (sha256:…), with Python …, Alembic …", or
/// "ran on this machine, with Python …"; None for SQL folders.
pub fn launch_line(r: &Report, code: bool) -> Option<String> {
    let l = r.launch.as_ref()?;
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_string() };
    let versions: Vec<String> =
        l.tool_versions.iter().map(|v| format!("{} {}", display_name(&v.name), v.value)).collect();
    let with = if versions.is_empty() { String::new() } else { format!(", with {}", versions.join(", ")) };
    let image = match (&l.image, &l.image_id) {
        (Some(image), Some(id)) => format!("image {} ({})", q(image), id.chars().take(19).collect::<String>()),
        (Some(image), None) => format!("image {}", q(image)),
        _ => return Some(format!("The migration tool ran on this machine{with}.")),
    };
    let job = match (&l.job, &l.container) {
        (Some(job), Some(c)) => format!("as Job {} (container {}), ", q(job), q(c)),
        _ => "in a container of the app's ".to_string(),
    };
    let mut line = format!("Rehearsed {job}{image}{with}.");
    if !l.from_cluster.is_empty() {
        line.push_str(&format!(
            " Not rehearsed (filled in by the cluster): {}.",
            l.from_cluster.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
        ));
    }
    Some(line)
}

fn display_name(module: &str) -> &str {
    match module {
        "python" => "Python",
        "alembic" => "Alembic",
        "sqlalchemy" => "SQLAlchemy",
        other => other,
    }
}

/// "racing 3 replicas of `alembic upgrade head` was unsafe: copies 1 and 3
/// failed (already exists); the version rows differ": the race's verdict
/// and its main reasons, on one line.
pub fn race_line(race: &RaceReport, code: bool) -> String {
    let q = |s: &str| if code { format!("`{s}`") } else { s.to_string() };
    let head = format!("racing {} replicas of {} was {}", race.replicas, q(&race.command), race.verdict.as_str());
    if race.verdict == RaceVerdict::Safe {
        let lock = race.lock.as_ref().map(|l| format!(" (they took turns on {})", lock_name(l))).unwrap_or_default();
        return format!("{head}: every copy exited 0 and the database ended as the sequential rehearsal left it{lock}");
    }
    if race.verdict == RaceVerdict::Inconclusive {
        return format!("{head}: {}", race.reasons.join("; "));
    }
    let mut parts: Vec<String> = Vec::new();
    let mut kinds: Vec<RaceFailure> = race.copies.iter().filter_map(|c| c.failure).collect();
    kinds.sort_by_key(|k| *k as u8);
    kinds.dedup();
    for kind in kinds.into_iter().filter(|k| *k != RaceFailure::Killed) {
        let copies: Vec<usize> = race.copies.iter().filter(|c| c.failure == Some(kind)).map(|c| c.copy).collect();
        let verb = match kind {
            RaceFailure::Hung => "hung".to_string(),
            other => format!("failed ({})", other.in_words()),
        };
        parts.push(format!("{} {verb}", copies_text(&copies)));
    }
    if let Some(h) = race.hang.as_ref().filter(|h| h.invisible_to_postgres) {
        parts.push(format!("a wait cycle PostgreSQL cannot see ({} sessions)", h.cycle.len()));
    }
    if race.versions.expected != race.versions.found {
        parts.push("the version rows differ from the sequential rehearsal's".into());
    }
    if !race.schema_differences.is_empty() {
        parts.push(format!("the schema differs in {}", count(race.schema_differences.len(), "place", "places")));
    }
    format!("{head}: {}", parts.join("; "))
}

/// "copy 2", "copies 1 and 3", "copies 1, 2 and 3".
pub fn copies_text(copies: &[usize]) -> String {
    let names: Vec<String> = copies.iter().map(|c| c.to_string()).collect();
    match names.as_slice() {
        [] => "no copy".into(),
        [one] => format!("copy {one}"),
        more => format!("copies {}", and_list(more)),
    }
}

/// "a", "a and b", "a, b and c".
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "session advisory lock 72707".
pub fn lock_name(lock: &RaceLock) -> String {
    match lock.kind {
        AdvisoryLockKind::Unknown => format!("advisory lock {}", lock.key),
        kind => format!("{} advisory lock {}", kind.as_str(), lock.key),
    }
}

/// `text` with its first letter in upper case.
pub fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The drift check in a sentence: what differs from the history, by cause.
pub fn drift_line(drift: &DriftReport) -> String {
    if let Some(error) = &drift.error {
        return format!(
            "the history could not be built from empty to compare with: {}",
            crate::sys::text::one_line(error, 160)
        );
    }
    if drift.findings.is_empty() {
        let objects: usize = drift.checked.values().sum();
        return format!(
            "production plus this release matches what the history builds from empty ({objects} objects compared)"
        );
    }
    let mut causes: Vec<String> = Vec::new();
    for cause in [DriftCause::OnlyInProduction, DriftCause::OnlyInHistory, DriftCause::Different] {
        let n = drift.findings.iter().filter(|f| f.cause == cause).count();
        if n > 0 {
            causes.push(format!("{n} {}", cause.in_words()));
        }
    }
    let n = drift.findings.len();
    format!(
        "{n} difference{} from what the history builds from empty ({})",
        if n == 1 { "" } else { "s" },
        causes.join(", ")
    )
}
