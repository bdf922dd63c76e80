//! `report.md`: for humans and release tickets.

use std::fmt::Write;

use super::table::verdict;
use super::{format_bytes, format_ms, MigrationStatus, Report};

pub fn render(r: &Report) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Migration rehearsal: {}\n", r.scenario);
    let _ = writeln!(w, "**{}**\n", verdict(r));
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
    if !r.budget_breaches.is_empty() {
        let _ = writeln!(w, "**Run budget breaches:**\n");
        for b in &r.budget_breaches {
            let _ = writeln!(w, "- {b}");
        }
        let _ = writeln!(w);
    }

    for m in &r.migrations {
        super::section::render(w, m, r.observation.sample_interval_ms);
    }

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
