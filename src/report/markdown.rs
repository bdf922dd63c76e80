//! `report.md`: for humans and release tickets.

use std::fmt::Write;

use super::checklist::replica_lag;
use super::summary;
use super::table::verdict;
use super::{format_bytes, format_ms, MigrationStatus, Report};

pub fn render(r: &Report) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Migration rehearsal: {}\n", r.scenario);
    let _ = writeln!(w, "**{}**\n", verdict(r));
    if let Some(m) = summary::riskiest(r) {
        let _ = writeln!(w, "**Riskiest migration:** {}\n", summary::riskiest_line(m, true));
    }
    let breaches = summary::breach_lines(r, true);
    if !breaches.is_empty() {
        let _ = writeln!(w, "**Over budget:**\n");
        for b in breaches {
            let _ = writeln!(w, "- {b}");
        }
        let _ = writeln!(w);
    }
    if let Some(heading) = summary::baseline_heading(r) {
        let _ = writeln!(w, "**{}.**\n", capitalize(&heading));
        let lines = summary::regression_lines(r, true);
        for line in &lines {
            let _ = writeln!(w, "- {line}");
        }
        if !lines.is_empty() {
            let _ = writeln!(w);
        }
    }
    let _ = writeln!(
        w,
        "Rehearsed on PostgreSQL {} ({} backend) restored from `{}`, started {}.\n",
        r.postgres.version.as_deref().unwrap_or("?"),
        r.postgres.backend,
        r.dump.path,
        r.started_at
    );

    let _ = writeln!(w, "## Migrations\n");
    let _ = writeln!(w, "| # | Migration | Status | Time | WAL |");
    let _ = writeln!(w, "|--:|---|---|--:|--:|");
    for (i, m) in r.migrations.iter().enumerate() {
        let ran = m.status != MigrationStatus::Skipped;
        let _ = writeln!(
            w,
            "| {} | `{}` {} | {} | {} | {} |",
            i + 1,
            m.id,
            escape(&m.description),
            m.status.as_str(),
            if ran { format_ms(m.duration_ms) } else { "-".into() },
            if ran { format_bytes(m.wal.bytes) } else { "-".into() },
        );
    }
    let _ = writeln!(w);
    baseline_table(w, r);

    for m in &r.migrations {
        super::section::render(w, m, r);
    }
    checklist(w, r);

    let _ = writeln!(w, "## Dump\n");
    let _ = writeln!(w, "- Path: `{}`", r.dump.path);
    if let Some(f) = r.dump.format {
        let _ = writeln!(
            w,
            "- Format: {}",
            serde_json::to_value(f).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
        );
    }
    let _ = writeln!(w, "- Size: {} ({} bytes)", format_bytes(r.dump.bytes), r.dump.bytes);
    if let Some(sha) = &r.dump.sha256 {
        let _ = writeln!(w, "- sha256: `{sha}`");
    }
    if let Some(db) = r.dump.database_bytes {
        let _ = writeln!(w, "- Restored database size: {}", format_bytes(db.max(0) as u64));
    }
    let _ = writeln!(w, "- Restore: {} with {} job(s)", format_ms(r.restore.duration_ms), r.restore.jobs);
    if !r.restore.roles_created.is_empty() {
        let _ = writeln!(w, "- Roles created for owners and grants: {}", r.restore.roles_created.join(", "));
    }
    if !r.dump.tables.is_empty() {
        let _ = writeln!(w, "\n| Table | Rows | Size |\n|---|--:|--:|");
        for t in r.dump.tables.iter().take(15) {
            let _ = writeln!(w, "| `{}` | {} | {} |", t.name, t.rows, format_bytes(t.bytes.max(0) as u64));
        }
        let _ = writeln!(w, "\nRows are `pg_class.reltuples` right after `VACUUM ANALYZE` of the fresh restore.");
    }

    let _ = writeln!(w, "\n## Environment\n");
    let _ =
        writeln!(w, "- PostgreSQL {} ({} backend)", r.postgres.version.as_deref().unwrap_or("?"), r.postgres.backend);
    let _ = writeln!(
        w,
        "- Machine: {} CPU(s), {} RAM",
        r.machine.cpus,
        r.machine.memory_bytes.map(format_bytes).unwrap_or_else(|| "?".into())
    );
    if !r.postgres.settings.is_empty() {
        let list: Vec<String> = r.postgres.settings.iter().map(|s| format!("`{}={}`", s.name, s.value)).collect();
        let _ = writeln!(w, "- Settings during the rehearsal: {}", list.join(", "));
    }
    if !r.postgres.scenario_settings.is_empty() {
        let list: Vec<String> =
            r.postgres.scenario_settings.iter().map(|s| format!("`{}={}`", s.name, s.value)).collect();
        let _ = writeln!(w, "- Prod-like settings from the scenario: {}", list.join(", "));
    }
    if !r.stages.is_empty() {
        let list: Vec<String> = r.stages.iter().map(|s| format!("{} {}", s.stage, format_ms(s.duration_ms))).collect();
        let _ = writeln!(w, "- Stages: {}", list.join(" · "));
    }
    let _ = writeln!(w, "\nTimings are from this machine; production hardware and load differ.");
    md
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Every migration compared with the baseline, changes in time, WAL and longest block.
fn baseline_table(w: &mut String, r: &Report) {
    let Some(b) = r.baseline.as_ref().filter(|b| !b.migrations.is_empty()) else { return };
    let _ = writeln!(w, "## Compared with the baseline\n");
    let _ = writeln!(w, "| Migration | Time | WAL | Longest blocking lock |\n|---|--:|--:|--:|");
    for d in &b.migrations {
        let cell = |c: &super::Change, metric: &str| {
            let shown = |v: u64| if metric == "wal_bytes" { format_bytes(v) } else { format_ms(v) };
            let pct = c.change_percent.map(|p| format!(" ({p:+.0}%)")).unwrap_or_default();
            let regressed = b.regressions.iter().any(|g| g.id == d.id && g.metric == metric);
            format!(
                "{} → {}{pct}{}",
                shown(c.baseline),
                shown(c.current),
                if regressed { " **regression**" } else { "" }
            )
        };
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} |",
            d.id,
            cell(&d.duration_ms, "duration_ms"),
            cell(&d.wal_bytes, "wal_bytes"),
            cell(&d.longest_block_ms, "longest_block_ms")
        );
    }
    if !b.not_compared.is_empty() {
        let list: Vec<String> = b.not_compared.iter().map(|i| format!("`{i}`")).collect();
        let _ = writeln!(w, "\nNot compared (did not apply in one of the runs): {}.", list.join(", "));
    }
    let _ = writeln!(w);
}

/// The production checklist, then the per-migration estimate behind two of its items.
fn checklist(w: &mut String, r: &Report) {
    if r.checklist.items.is_empty() {
        return;
    }
    let _ = writeln!(w, "## Production checklist\n");
    let _ = writeln!(w, "Filled from this rehearsal where it has evidence; open items say what a human must do.\n");
    for item in &r.checklist.items {
        let _ = writeln!(w, "- [{}] **{}**", if item.done { "x" } else { " " }, item.title);
        for e in &item.evidence {
            let _ = writeln!(w, "  - {e}");
        }
        if let Some(todo) = &item.todo {
            let _ = writeln!(w, "  - **To do:** {todo}");
        }
    }
    let ran: Vec<_> = r.migrations.iter().filter(|m| m.status != MigrationStatus::Skipped).collect();
    if ran.is_empty() {
        let _ = writeln!(w);
        return;
    }
    let rate = r.checklist.replica_apply_rate_bytes_per_second;
    let _ = writeln!(w, "\n### Runtime and replica lag estimate\n");
    let _ = writeln!(
        w,
        "| Migration | Status | Time | WAL | WAL rate | Replay at {}/s | Est. replica lag |\n|---|---|--:|--:|--:|--:|--:|",
        format_bytes(rate)
    );
    for m in ran {
        let (replay, lag) = replica_lag(m, rate);
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            m.id,
            m.status.as_str(),
            format_ms(m.duration_ms),
            format_bytes(m.wal.bytes),
            m.wal.bytes_per_second.map(|b| format!("{}/s", format_bytes(b as u64))).unwrap_or_else(|| "-".into()),
            format_ms(replay),
            format_ms(lag)
        );
    }
    let _ = writeln!(
        w,
        "| **Total** | | **{}** | **{}** | | | |\n",
        format_ms(r.totals.duration_ms),
        format_bytes(r.totals.wal_bytes)
    );
    let _ = writeln!(
        w,
        "Times are measured on this machine ({} CPU(s)); the replica lag is an estimate (see the item above).\n",
        r.machine.cpus
    );
}

pub(super) fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

pub(super) fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ").replace('`', "'");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}
