//! One migration's section of `report.md`: what it did, what it locked and
//! for how long, what the probes felt, WAL, rewrites, statements, hazards.

use std::fmt::Write;

use super::markdown::{escape, one_line};
use super::{format_bytes, format_ms, MigrationReport, MigrationStatus, Report};

/// How many statements each migration's section lists, slowest first.
const TOP_STATEMENTS: usize = 10;

pub fn render(w: &mut String, m: &MigrationReport, r: &Report) {
    let sample_interval_ms = r.observation.sample_interval_ms;
    let _ = writeln!(w, "### `{}`: {}\n", m.id, m.status.as_str());
    if let Some(file) = &m.file {
        let _ = writeln!(w, "- File: `{file}` (version {})", m.version);
    }
    if m.status == MigrationStatus::Skipped {
        let _ = writeln!(w, "- Not run: an earlier migration did not complete.\n");
        return;
    }
    match m.startup_ms {
        Some(s) => {
            let _ = writeln!(
                w,
                "- Time: {} (plus {} for the tool's start-up and imports)",
                format_ms(m.duration_ms),
                format_ms(s)
            );
        }
        None => {
            let _ = writeln!(w, "- Time: {}", format_ms(m.duration_ms));
        }
    }
    for (what, block) in [("reads", &m.longest_read_block), ("writes", &m.longest_write_block)] {
        match block {
            Some(b) => {
                let _ =
                    writeln!(w, "- Longest block of {what}: {} ({} on `{}`)", format_ms(b.held_ms), b.mode, b.relation);
            }
            None => {
                let _ = writeln!(w, "- Longest block of {what}: none on existing tables");
            }
        }
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
    let _ = writeln!(w, "{wal_line}");
    for b in &m.budget_breaches {
        let _ = writeln!(w, "- **Over budget:** {b}");
    }
    if r.budgets.overrides.contains_key(&m.id) && m.budget_breaches.is_empty() {
        let _ = writeln!(w, "- Within its own budget (`budgets.overrides`: accepted as a maintenance-window job)");
    }
    for g in r.baseline.iter().flat_map(|b| b.regressions.iter().filter(|g| g.id == m.id)) {
        let _ = writeln!(w, "- **Regression:** {}", g.message);
    }
    for c in &m.destructive_changes {
        let to = c.new_name.as_ref().map(|n| format!(" → `{n}`")).unwrap_or_default();
        let line = c.line.map(|l| format!(" (line {l})")).unwrap_or_default();
        let _ = writeln!(
            w,
            "- **Destructive:** {} `{}`{to}{line}: the running app version may still use it",
            c.kind, c.object
        );
    }
    if let Some(e) = &m.error {
        let _ = writeln!(w, "\n**Error**");
        if let (Some(file), Some(line)) = (&e.file, e.line) {
            let _ = writeln!(w, "at `{file}` line {line}:");
        }
        let _ = writeln!(w, "\n```\n{}\n```", e.message);
        if let Some(stmt) = &e.statement {
            let _ = writeln!(w, "\nStatement:\n\n```sql\n{stmt}\n```");
        }
    }

    if let Some(r) = &m.recovery {
        let _ = writeln!(w, "\n**Recovery**\n");
        if let Some(v) = &r.alembic_version {
            let _ = writeln!(
                w,
                "- `alembic_version` after the failure: {}",
                if v.is_empty() { "empty".into() } else { v.join(", ") }
            );
        }
        if !r.leftovers.is_empty() {
            let _ = writeln!(w, "- Left behind: {}", r.leftovers.join(", "));
        }
        if !r.invalid_indexes.is_empty() {
            let _ = writeln!(w, "- Invalid indexes: {}", r.invalid_indexes.join(", "));
        }
        for (i, step) in r.steps.iter().enumerate() {
            let _ = writeln!(w, "{}. {step}", i + 1);
        }
    }

    if !m.hazards.is_empty() {
        let _ = writeln!(w, "\n**Hazards**\n");
        for h in &m.hazards {
            let _ = writeln!(
                w,
                "- **{}** — {}.  \n  Evidence: {}.  \n  Fix: {}. ([{}]({}))",
                h.rule, h.message, h.evidence, h.fix, h.rule, h.docs
            );
        }
    }

    let shown: Vec<_> = m.locks.iter().filter(|l| !l.created && (l.blocks.len() > 1 || l.kind == "table")).collect();
    if !shown.is_empty() {
        let _ = writeln!(w, "\n**Locks on existing relations**\n");
        let _ = writeln!(w, "| Relation | Mode | Held | Waited | Blocks | Seen by |\n|---|---|--:|--:|---|---|");
        for l in &shown {
            let _ = writeln!(
                w,
                "| `{}` ({}) | {} | {} | {} | {} | {} |",
                l.relation,
                l.kind,
                l.mode,
                format_ms(l.held_ms),
                format_ms(l.waited_ms),
                l.blocks.join(", "),
                l.source.join(" + ")
            );
        }
        let hidden = m.locks.len() - shown.len();
        if hidden > 0 {
            let _ =
                writeln!(w, "\n{hidden} more (on relations this migration created, or index reads) in report.json.");
        }
        let _ = writeln!(
            w,
            "\nHolds are measured from the statement that took a lock to the end of its transaction when rehearse runs \
             the statements itself, and by sampling pg_locks every {sample_interval_ms}ms (for migration tools, sampling \
             alone gives the hold; a hold shorter than the interval can be missed by sampling)."
        );
    }

    let felt: Vec<_> = m.probes.iter().filter(|p| p.reads.probes + p.writes.probes > 0).collect();
    if !felt.is_empty() {
        let _ = writeln!(w, "\n**What the app would feel** (probe sessions on hot tables)\n");
        let _ = writeln!(
            w,
            "| Table | Read wait max | Read p99 | Write wait max | Write p99 | Probes |\n|---|--:|--:|--:|--:|--:|"
        );
        // A side no probe ran on: nothing held or awaited a lock that blocks it.
        let waits = |s: &crate::report::WaitStats| match s.probes {
            0 => ("-".to_string(), "-".to_string()),
            _ => (format!("{:.1}ms", s.max_ms), format!("{:.1}ms", s.p99_ms)),
        };
        for p in felt {
            let ((read_max, read_p99), (write_max, write_p99)) = (waits(&p.reads), waits(&p.writes));
            let _ = writeln!(
                w,
                "| `{}` | {read_max} | {read_p99} | {write_max} | {write_p99} | {} |",
                p.relation,
                p.reads.probes + p.writes.probes
            );
        }
        let _ = writeln!(
            w,
            "\nA probe runs only while a lock that would block it is held or awaited; `-`: none was, so nothing waited."
        );
    }

    if !m.rewrites.is_empty() || !m.size_changes.is_empty() {
        let _ = writeln!(w, "\n**Rewrites and size changes**\n");
        let _ = writeln!(w, "| Relation | Change | Before | After |\n|---|---|--:|--:|");
        for (what, list) in [("rewritten", &m.rewrites), ("size changed", &m.size_changes)] {
            for r in list.iter() {
                let _ = writeln!(
                    w,
                    "| `{}` ({}) | {what} | {} | {} |",
                    r.relation,
                    r.kind,
                    format_bytes(r.bytes_before.max(0) as u64),
                    format_bytes(r.bytes_after.max(0) as u64)
                );
            }
        }
    }

    if !m.statements.is_empty() {
        let mut slowest: Vec<_> = m.statements.iter().collect();
        slowest.sort_by_key(|s| std::cmp::Reverse(s.duration_ms));
        let _ = writeln!(w, "\n**Statements** (slowest first)\n");
        let _ = writeln!(w, "| Line | Statement | Time | Rows | WAL | Locks taken |\n|--:|---|--:|--:|--:|---|");
        for s in slowest.into_iter().take(TOP_STATEMENTS) {
            let locks: Vec<String> =
                s.locks.iter().filter(|l| l.kind == "table").map(|l| format!("{} {}", l.mode, l.relation)).collect();
            let _ = writeln!(
                w,
                "| {} | `{}` | {} | {} | {} | {} |",
                s.line.map(|l| l.to_string()).unwrap_or_default(),
                escape(&one_line(&s.query, 90)),
                format_ms(s.duration_ms),
                s.rows,
                s.wal_bytes.map(format_bytes).unwrap_or_default(),
                locks.join(", ")
            );
        }
    } else if !m.top_statements.is_empty() {
        let _ = writeln!(w, "\n**Statements** (pg_stat_statements, by total time)\n");
        let _ = writeln!(w, "| Statement | Calls | Time | Rows | WAL |\n|---|--:|--:|--:|--:|");
        for s in m.top_statements.iter().take(TOP_STATEMENTS) {
            let _ = writeln!(
                w,
                "| `{}` | {} | {:.1}ms | {} | {} |",
                escape(&one_line(&s.query, 90)),
                s.calls,
                s.duration_ms,
                s.rows,
                s.wal_bytes.map(format_bytes).unwrap_or_default()
            );
        }
    }
    if let Some(sql) = &m.offline_sql {
        let _ = writeln!(w, "\n<details><summary>Offline SQL (<code>alembic upgrade --sql</code>)</summary>\n\n```sql\n{}\n```\n</details>", sql.trim());
    } else if let Some(why) = &m.offline_sql_unavailable {
        let _ = writeln!(w, "\nOffline SQL not available: {why}");
    }
    let _ = writeln!(w);
}
