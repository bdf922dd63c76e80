//! The app's traffic in `report.md`: what was replayed, how fast, with
//! which long transactions, and per migration what the app felt against
//! the baseline right before it.

use std::fmt::Write;

use super::put;
use crate::report::{format_ms, LoadInfo, MigrationLoad, Report};

/// `## Under the app's traffic`.
pub fn section(w: &mut String, r: &Report) {
    let Some(info) = &r.load else { return };
    put!(w, "## Under the app's traffic\n");
    put!(w, "{}\n", workload_line(info));
    if info.below_asked() {
        put!(
            w,
            "**This machine reached {:.1} statements/s of the {:.1} asked**: the figures below are at the rate \
             reached (the generator's own CPU: {} ms, {:.0}% of a core).\n",
            info.rate_reached,
            info.rate_asked,
            info.generator_cpu_ms,
            info.generator_cpu_share * 100.0
        );
    }
    put!(w, "| Migration | Verdict | Longest stall | p99 (baseline) | max | Errors | Queued behind it | Statements (not issued) |");
    put!(w, "|---|---|--:|--:|--:|---|--:|--:|");
    for m in &r.migrations {
        let Some(l) = &m.load else { continue };
        put!(
            w,
            "| `{}` | {} | {} | {} ({}) | {} | {} | {} | {} ({}) |",
            m.id,
            l.verdict.map_or("-", |v| v.as_str()),
            stall(l),
            ms(l.latency_ms.p99),
            ms(l.baseline_ms.p99),
            ms(l.latency_ms.max),
            errors(l),
            l.max_queue,
            l.statements,
            l.not_issued
        );
    }
    put!(
        w,
        "\nA stall is the longest stretch during which the app's statements on one table waited longer than {} \
         (`load.stall_threshold`); queued: the most app sessions seen waiting on a chain of locks that leads to the \
         migration (`pg_blocking_pids`). Not issued: statements due while all {} clients were busy, typically all \
         waiting behind the migration (production's pool would be exhausted too). Verdicts: `normal_hours` within \
         the `max_app_*` budgets at this rate; `window` within them at `load.window_rate` (errors scaled by the \
         rate; stalls and latencies come from the locks, so they are judged as measured); `unsafe` past them even then.\n",
        format_ms(info.stall_threshold_ms),
        info.clients
    );
    if !info.not_replayed.is_empty() {
        put!(w, "Not replayed ({} of the workload's statements):\n", info.not_replayed.len());
        for n in &info.not_replayed {
            put!(w, "- line {}: {} (`{}`)", n.line, n.reason, one_line(&n.sql, 100));
        }
        put!(w);
    }
}

/// The per-migration line under its figures.
pub fn migration_line(w: &mut String, l: &MigrationLoad) {
    put!(
        w,
        "- App under load: {} statements, p99 {} (baseline {}), longest stall {}, {} queued behind it at most, errors: {}{}",
        l.statements,
        ms(l.latency_ms.p99),
        ms(l.baseline_ms.p99),
        stall(l),
        l.max_queue,
        errors(l),
        l.verdict.map(|v| format!("; verdict `{}`", v.as_str())).unwrap_or_default()
    );
}

fn workload_line(info: &LoadInfo) -> String {
    let long = match info.long_transactions.as_slice() {
        [] => "no long transaction".to_string(),
        list => {
            let each: Vec<String> =
                list.iter().map(|t| format!("`{}` for {}", t.table, format_ms(t.duration_ms))).collect();
            format!("long transactions holding ACCESS SHARE on {}, opened before each migration", each.join(", "))
        }
    };
    let window = info.window_rate.map(|w| format!("; low-traffic window {w:.1}/s")).unwrap_or_default();
    format!(
        "Replayed {} statement(s) of `{}` at {} ({:.1} statements/s asked, {:.1} reached{window}) from {} clients, \
         with {long}; a {} baseline of the same workload right before each migration. The workload's writes changed \
         the copy.",
        info.replayed,
        info.queries,
        info.rate,
        info.rate_asked,
        info.rate_reached,
        info.clients,
        format_ms(info.baseline_ms),
    )
}

fn ms(v: f64) -> String {
    format_ms(v.round() as u64)
}

fn stall(l: &MigrationLoad) -> String {
    match &l.stall_table {
        Some(t) if l.stall_ms > 0 => format!("{} on `{t}`", format_ms(l.stall_ms)),
        _ => "none".into(),
    }
}

fn errors(l: &MigrationLoad) -> String {
    match l.errors.is_empty() {
        true => "none".into(),
        false => l.errors.iter().map(|(code, n)| format!("{code} ×{n}")).collect::<Vec<_>>().join(", "),
    }
}

fn one_line(sql: &str, max: usize) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
