//! One migration's section of `report.md`: what it did, what it locked and
//! for how long, what the probes felt, WAL, rewrites, statements, hazards.
//! One function per part, in reading order.

use std::fmt::Write;

use super::{code_cell, code_line, put};
use crate::pg::RelationKind;
use crate::report::{format_bytes, format_ms, hazards, MigrationKind, MigrationReport, Recovery, Report, WaitStats};

/// How many statements each migration's section lists, slowest first.
const TOP_STATEMENTS: usize = 10;

pub fn render(w: &mut String, m: &MigrationReport, r: &Report) {
    put!(w, "### `{}`: {}\n", m.id, m.status.as_str());
    match (&m.file, m.kind) {
        (Some(file), MigrationKind::Versioned) => put!(w, "- File: `{file}` (version {})", m.version),
        // Repeatables and callbacks have no version (Flyway's words for them).
        (Some(file), kind) => put!(w, "- File: `{file}` ({} migration)", kind.as_str()),
        (None, _) => {}
    }
    if !m.ran() {
        put!(w, "- Not run: an earlier migration did not complete.\n");
        return;
    }
    figures(w, m);
    verdicts(w, m, r);
    compat(w, m);
    error(w, m);
    if let Some(recovery) = &m.recovery {
        recovery_steps(w, recovery);
    }
    hazards(w, m);
    locks(w, m, r.observation.sample_interval_ms);
    probes(w, m);
    rewrites(w, m);
    progress(w, m);
    statements(w, m);
    offline_sql(w, m);
    put!(w);
}

/// Time, longest blocks and WAL.
fn figures(w: &mut String, m: &MigrationReport) {
    match m.startup_ms {
        Some(s) => {
            put!(w, "- Time: {} (plus {} for the tool's start-up and imports)", format_ms(m.duration_ms), format_ms(s))
        }
        None => put!(w, "- Time: {}", format_ms(m.duration_ms)),
    }
    if let Some(after) = m.post_migrate_ms {
        put!(w, "- After it: {} in Django's post_migrate handlers (not in its time)", format_ms(after));
    }
    if let Some((tries, lost_ms, lock_timeout_ms)) = m.retried() {
        put!(w, "- Retried: {tries} attempts, {} lost to lock_timeout {lock_timeout_ms}ms", format_ms(lost_ms));
    }
    for (what, block) in [("reads", &m.longest_read_block), ("writes", &m.longest_write_block)] {
        match block {
            Some(b) => put!(w, "- Longest block of {what}: {} ({} on `{}`)", format_ms(b.held_ms), b.mode, b.relation),
            None => put!(w, "- Longest block of {what}: none on existing tables"),
        }
    }
    if let Some(e) = &m.estimate {
        put!(
            w,
            "- At production scale: {}; longest block of reads {}, of writes {} ({})",
            crate::report::range_ms(e.duration_ms),
            crate::report::range_ms(e.longest_read_block_ms),
            crate::report::range_ms(e.longest_write_block_ms),
            e.basis.join("; ")
        );
    }
    super::standby::migration_line(w, m);
    if let Some(l) = &m.load {
        super::load::migration_line(w, l);
    }
    let wal = &m.wal;
    let mut wal_line = format!("- WAL: {} ({} bytes)", format_bytes(wal.bytes), wal.bytes);
    if let (Some(records), Some(fpi)) = (wal.records, wal.fpi) {
        let _ = write!(wal_line, ", {records} records, {fpi} full-page images");
    }
    if let Some(rate) = wal.bytes_per_second {
        let _ = write!(wal_line, ", {}/s", format_bytes(rate as u64));
    }
    if let Some(c) = wal.checkpoints.filter(|c| *c > 0) {
        let _ = write!(wal_line, ", {c} checkpoint(s) during the migration");
    }
    put!(w, "{wal_line}");
}

/// Budget breaches, the override that accepted it, regressions, destructive changes.
fn verdicts(w: &mut String, m: &MigrationReport, r: &Report) {
    for b in &m.budget_breaches {
        put!(w, "- **Over budget:** {b}");
    }
    if r.budgets.overrides.contains_key(&m.id) && m.budget_breaches.is_empty() {
        put!(w, "- Within its own budget (`budgets.overrides`: accepted as a maintenance-window job)");
    }
    for g in r.baseline.iter().flat_map(|b| b.regressions.iter().filter(|g| g.id == m.id)) {
        put!(w, "- **Regression:** {}", g.message);
    }
    for c in &m.destructive_changes {
        let to = c.new_name.as_ref().map(|n| format!(" → `{n}`")).unwrap_or_default();
        let at = c.line.map(|l| format!(" (line {l})")).unwrap_or_default();
        put!(w, "- **Destructive:** {} `{}`{to}{at}: the running app version may still use it", c.kind, c.object);
    }
}

/// The running app's queries this migration broke, or that none did.
fn compat(w: &mut String, m: &MigrationReport) {
    let Some(c) = &m.compat else { return };
    if c.broken.is_empty() {
        put!(w, "- Queries of the running app: {} checked, none broken", c.checked);
        return;
    }
    put!(w, "\n**Breaks queries of the running app** ({} of {} checked)\n", c.broken.len(), c.checked);
    for b in &c.broken {
        let calls = b.calls.map(|n| format!(" (production ran it {n} times)")).unwrap_or_default();
        put!(w, "- `{}`{calls}: `{}` {}", code_line(&b.query, 200), b.code, b.message);
    }
}

fn error(w: &mut String, m: &MigrationReport) {
    let Some(e) = &m.error else { return };
    put!(w, "\n**Error**");
    if let (Some(file), Some(at)) = (&e.file, e.line) {
        put!(w, "at `{file}` line {at}:");
    }
    put!(w, "\n```\n{}\n```", e.message);
    if let Some(stmt) = &e.statement {
        put!(w, "\nStatement:\n\n```sql\n{stmt}\n```");
    }
}

fn recovery_steps(w: &mut String, r: &Recovery) {
    put!(w, "\n**Recovery**\n");
    if let Some(v) = &r.alembic_version {
        let at = if v.is_empty() { "empty".to_string() } else { v.join(", ") };
        put!(w, "- `alembic_version` after the failure: {at}");
    }
    if !r.leftovers.is_empty() {
        put!(w, "- Left behind: {}", r.leftovers.join(", "));
    }
    if !r.invalid_indexes.is_empty() {
        put!(w, "- Invalid indexes: {}", r.invalid_indexes.join(", "));
    }
    for (i, step) in r.steps.iter().enumerate() {
        put!(w, "{}. {step}", i + 1);
    }
}

/// Every finding, then the rules `hazards.ignore` set aside here, counted.
fn hazards(w: &mut String, m: &MigrationReport) {
    for what in &m.not_evaluated {
        put!(w, "\n**Not evaluated:** {what}.");
    }
    if m.hazards.is_empty() && m.ignored_hazards.is_empty() {
        return;
    }
    put!(w, "\n**Hazards**\n");
    for h in &m.hazards {
        put!(
            w,
            "- **{}** — {}.  \n  Evidence: {}.  \n  Fix: {}. ([{}]({}))",
            h.rule,
            h.message,
            h.evidence,
            h.fix,
            h.rule,
            h.docs
        );
    }
    if !m.ignored_hazards.is_empty() {
        let ignored = hazards::by_rule(m.ignored_hazards.iter().map(|h| (m.id.as_str(), h)));
        put!(w, "- Ignored by `hazards.ignore`: {}.", hazards::rule_counts(&ignored));
    }
}

/// Locks on relations the app uses: tables, and anything blocking more than DDL.
fn locks(w: &mut String, m: &MigrationReport, sample_interval_ms: u64) {
    let shown: Vec<_> =
        m.locks.iter().filter(|l| !l.created && (l.blocks.len() > 1 || l.kind == RelationKind::Table)).collect();
    if shown.is_empty() {
        return;
    }
    put!(w, "\n**Locks on existing relations**\n");
    put!(w, "| Relation | Mode | Held | Waited | Blocks | Seen by |\n|---|---|--:|--:|---|---|");
    for l in &shown {
        let blocks: Vec<&str> = l.blocks.iter().map(|b| b.as_str()).collect();
        let sources: Vec<&str> = l.source.iter().map(|s| s.as_str()).collect();
        put!(
            w,
            "| `{}` ({}) | {} | {} | {} | {} | {} |",
            l.relation,
            l.kind,
            l.mode,
            format_ms(l.held_ms),
            format_ms(l.waited_ms),
            blocks.join(", "),
            sources.join(" + ")
        );
    }
    let hidden = m.locks.len() - shown.len();
    if hidden > 0 {
        put!(w, "\n{hidden} more (on relations this migration created, or index reads) in report.json.");
    }
    put!(
        w,
        "\nHolds are measured from the statement that took a lock to the end of its transaction when rehearse runs \
         the statements itself, and by sampling pg_locks every {sample_interval_ms}ms (for migration tools, sampling \
         alone gives the hold; a hold shorter than the interval can be missed by sampling)."
    );
}

/// What the probe sessions on hot tables waited.
fn probes(w: &mut String, m: &MigrationReport) {
    let felt: Vec<_> = m.probes.iter().filter(|p| p.reads.probes + p.writes.probes > 0).collect();
    if felt.is_empty() {
        return;
    }
    put!(w, "\n**What the app would feel** (probe sessions on hot tables)\n");
    put!(w, "| Table | Read wait max | Read p99 | Write wait max | Write p99 | Probes |\n|---|--:|--:|--:|--:|--:|");
    // A side no probe ran on: nothing held or awaited a lock that blocks it.
    let waits = |s: &WaitStats| match s.probes {
        0 => ("-".to_string(), "-".to_string()),
        _ => (format!("{:.1}ms", s.max_ms), format!("{:.1}ms", s.p99_ms)),
    };
    for p in felt {
        let ((read_max, read_p99), (write_max, write_p99)) = (waits(&p.reads), waits(&p.writes));
        let count = p.reads.probes + p.writes.probes;
        put!(w, "| `{}` | {read_max} | {read_p99} | {write_max} | {write_p99} | {count} |", p.relation);
    }
    put!(
        w,
        "\nA probe runs only while a lock that would block it is held or awaited; `-`: none was, so nothing waited."
    );
}

fn rewrites(w: &mut String, m: &MigrationReport) {
    if m.rewrites.is_empty() && m.size_changes.is_empty() {
        return;
    }
    put!(w, "\n**Rewrites and size changes**\n");
    put!(w, "| Relation | Change | Before | After |\n|---|---|--:|--:|");
    for (what, list) in [("rewritten", &m.rewrites), ("size changed", &m.size_changes)] {
        for r in list {
            let (before, after) =
                (format_bytes(r.bytes_before.max(0) as u64), format_bytes(r.bytes_after.max(0) as u64));
            put!(w, "| `{}` ({}) | {what} | {before} | {after} |", r.relation, r.kind);
        }
    }
}

/// What PostgreSQL's progress views showed, in the order it started.
fn progress(w: &mut String, m: &MigrationReport) {
    if m.progress.is_empty() {
        return;
    }
    put!(w, "\n**Seen in the progress views** (pg_stat_progress_*)\n");
    put!(w, "| Command | Table | Seen from | to | Phases |\n|---|---|--:|--:|---|");
    for p in &m.progress {
        put!(
            w,
            "| {} | `{}` | {} | {} | {} |",
            p.command,
            p.relation,
            format_ms(p.first_ms),
            format_ms(p.last_ms),
            p.phases.join(" → ")
        );
    }
}

/// The statements as they ran (slowest first), or pg_stat_statements' view.
fn statements(w: &mut String, m: &MigrationReport) {
    if !m.statements.is_empty() {
        let mut slowest: Vec<_> = m.statements.iter().collect();
        slowest.sort_by_key(|s| std::cmp::Reverse(s.duration_ms));
        put!(w, "\n**Statements** (slowest first)\n");
        put!(w, "| Line | Statement | Time | Rows | WAL | Locks taken |\n|--:|---|--:|--:|--:|---|");
        for s in slowest.into_iter().take(TOP_STATEMENTS) {
            let locks: Vec<String> = s
                .locks
                .iter()
                .filter(|l| l.kind == RelationKind::Table)
                .map(|l| format!("{} {}", l.mode, l.relation))
                .collect();
            // A batch of statements of one shape (Alembic's tracer): the first, and how many.
            let batch = if s.count > 1 { format!(" and {} more of its shape", s.count - 1) } else { String::new() };
            put!(
                w,
                "| {} | `{}`{batch} | {} | {} | {} | {} |",
                s.line.map(|l| l.to_string()).unwrap_or_default(),
                code_cell(&s.query, 90),
                format_ms(s.duration_ms),
                s.rows,
                s.wal_bytes.map(format_bytes).unwrap_or_default(),
                locks.join(", ")
            );
        }
    } else if !m.top_statements.is_empty() {
        put!(w, "\n**Statements** (pg_stat_statements, by total time)\n");
        put!(w, "| Statement | Calls | Time | Rows | WAL |\n|---|--:|--:|--:|--:|");
        for s in m.top_statements.iter().take(TOP_STATEMENTS) {
            let wal = s.wal_bytes.map(format_bytes).unwrap_or_default();
            put!(w, "| `{}` | {} | {:.1}ms | {} | {wal} |", code_cell(&s.query, 90), s.calls, s.duration_ms, s.rows);
        }
    }
}

fn offline_sql(w: &mut String, m: &MigrationReport) {
    if let Some(sql) = &m.offline_sql {
        put!(
            w,
            "\n<details><summary>Offline SQL (<code>alembic upgrade --sql</code>)</summary>\n\n```sql\n{}\n```\n</details>",
            sql.trim()
        );
    } else if let Some(why) = &m.offline_sql_unavailable {
        put!(w, "\nOffline SQL not available: {why}");
    }
}
