//! `report.md`: for humans and release tickets. One function per section,
//! in the order a reader meets them; `migration.rs` renders each migration's.

mod abort;
pub mod comment;
mod drift;
mod estimate;
mod hazards;
mod load;
mod migration;
mod physical;
mod race;
mod rollback;
mod sources;
mod standby;

use std::fmt::Write;

use super::checklist::replica_lag;
use super::summary::{self, verdict};
use super::{format_bytes, format_ms, range_ms, Change, Metric, Range, Report};

/// Appends one line (`writeln!` into a String cannot fail).
macro_rules! put {
    ($w:expr) => {{
        let _ = writeln!($w);
    }};
    ($w:expr, $($arg:tt)*) => {{
        let _ = writeln!($w, $($arg)*);
    }};
}
pub(crate) use put;

pub fn render(r: &Report) -> String {
    let mut md = String::new();
    let w = &mut md;
    headline(w, r);
    sources::section(w, r);
    production_scale(w, r);
    standby::section(w, r);
    load::section(w, r);
    baseline_table(w, r);
    compatibility(w, r);
    race::section(w, r);
    drift::section(w, r);
    abort::section(w, r);
    rollback::section(w, r);
    hazards::section(w, r);
    for m in &r.migrations {
        migration::render(w, m, r);
    }
    checklist(w, r);
    dump(w, r);
    environment(w, r);
    md
}

/// Title, verdict, the migration that failed, the riskiest one, breaches,
/// overrides that named nothing, regressions, provenance.
fn headline(w: &mut String, r: &Report) {
    put!(w, "# Migration rehearsal: {}\n", r.scenario);
    put!(w, "**{}**\n", verdict(r));
    if let Some(m) = summary::failed(r) {
        put!(w, "**Failed migration:** `{}`: {}\n", m.id, summary::first_error_line(m));
    }
    if let Some(m) = summary::riskiest(r) {
        put!(w, "**Riskiest migration:** {}\n", summary::riskiest_line(m, true));
    }
    bullets(w, Some("**Over budget:**"), &summary::breach_lines(r, true));
    if let Some(line) = summary::unused_overrides_line(r, true) {
        put!(w, "**Note:** {line}.\n");
    }
    if let Some(heading) = summary::baseline_heading(r) {
        put!(w, "**{}.**\n", summary::capitalize(&heading));
        bullets(w, None, &summary::regression_lines(r, true));
    }
    let data = match (&r.dump.clone, &r.dump.physical) {
        (Some(c), _) => format!("on a clone made by `create` (`{}`)", c.create),
        (None, Some(p)) => physical::origin(p),
        (None, None) => format!("restored from `{}`", r.dump.path),
    };
    put!(
        w,
        "Rehearsed on PostgreSQL {} ({} backend) {data}, started {}.\n",
        r.postgres.version.as_deref().unwrap_or("?"),
        r.postgres.backend,
        r.started_at
    );
    if let Some(line) = summary::launch_line(r, true) {
        put!(w, "{line}\n");
    }
}

/// A bulleted list (with a heading line before it), or nothing when empty.
fn bullets(w: &mut String, heading: Option<&str>, items: &[String]) {
    if items.is_empty() {
        return;
    }
    if let Some(h) = heading {
        put!(w, "{h}\n");
    }
    for item in items {
        put!(w, "- {item}");
    }
    put!(w);
}

/// The migrations at production's scale (`estimate:`), and what that rests on.
fn production_scale(w: &mut String, r: &Report) {
    let Some(info) = &r.estimate else { return };
    put!(w, "## At production scale\n");
    put!(
        w,
        "Estimated from production's statistics `{}` (database `{}`, PostgreSQL {}, read {}), production's server \
         taken as {}× as fast as this one (`estimate.speed`). Each figure is a range: mid (low–high).\n",
        info.production,
        info.database,
        info.server_version,
        info.taken_at,
        info.speed
    );
    put!(
        w,
        "| Migration | Measured here | At production scale | Longest block of reads | Longest block of writes | WAL |"
    );
    put!(w, "|---|--:|--:|--:|--:|--:|");
    let bytes = |r: Range| match r.low == r.high {
        true => format_bytes(r.mid),
        false => format!("{} ({}–{})", format_bytes(r.mid), format_bytes(r.low), format_bytes(r.high)),
    };
    for m in r.migrations.iter().filter(|m| m.ran()) {
        let Some(e) = &m.estimate else { continue };
        put!(
            w,
            "| `{}` | {} | {} | {} | {} | {} |",
            m.id,
            format_ms(m.duration_ms),
            range_ms(e.duration_ms),
            range_ms(e.longest_read_block_ms),
            range_ms(e.longest_write_block_ms),
            bytes(e.wal_bytes)
        );
    }
    if let Some(t) = &r.totals.estimate {
        put!(
            w,
            "| **Total** | **{}** | **{}** | {} | {} | **{}** |",
            format_ms(r.totals.duration_ms),
            range_ms(t.duration_ms),
            range_ms(t.longest_read_block_ms),
            range_ms(t.longest_write_block_ms),
            bytes(t.wal_bytes)
        );
    }
    put!(w, "\nHow: {}.\n", info.method);
    for m in r.migrations.iter().filter(|m| m.ran()) {
        let Some(e) = &m.estimate else { continue };
        put!(w, "- `{}`: {}", m.id, e.basis.join("; "));
        estimate::notes(w, e);
    }
    put!(w);
}

/// Every migration compared with the baseline: changes in time, WAL and longest block.
fn baseline_table(w: &mut String, r: &Report) {
    let Some(b) = r.baseline.as_ref().filter(|b| !b.migrations.is_empty()) else { return };
    put!(w, "## Compared with the baseline\n");
    put!(w, "| Migration | Time | WAL | Longest blocking lock |\n|---|--:|--:|--:|");
    for d in &b.migrations {
        let cell = |c: &Change, metric: Metric| {
            let shown = |v: u64| if metric == Metric::WalBytes { format_bytes(v) } else { format_ms(v) };
            let pct = c.change_percent.map(|p| format!(" ({p:+.0}%)")).unwrap_or_default();
            let regressed = b.regressions.iter().any(|g| g.id == d.id && g.metric == metric);
            let flag = if regressed { " **regression**" } else { "" };
            format!("{} → {}{pct}{flag}", shown(c.baseline), shown(c.current))
        };
        put!(
            w,
            "| `{}` | {} | {} | {} |",
            d.id,
            cell(&d.duration_ms, Metric::DurationMs),
            cell(&d.wal_bytes, Metric::WalBytes),
            cell(&d.longest_block_ms, Metric::LongestBlockMs)
        );
    }
    if !b.not_compared.is_empty() {
        let list: Vec<String> = b.not_compared.iter().map(|i| format!("`{i}`")).collect();
        put!(w, "\nNot compared (did not apply in one of the runs): {}.", list.join(", "));
    }
    put!(w);
}

/// The running app's queries: which migration broke which, and those broken before the release.
fn compatibility(w: &mut String, r: &Report) {
    let Some(info) = &r.compat else { return };
    put!(w, "## Compatibility with the running app\n");
    let ignored = summary::ignored_statements(info).map(|i| format!(" ({i})")).unwrap_or_default();
    put!(
        w,
        "{} from `{}`{ignored}, prepared against the schema before the first migration and after each one, \
         INSERTs' omitted columns held against NOT NULL columns without a default.\n",
        summary::capitalize(&summary::queries(info.checked)),
        info.queries
    );
    let broken: Vec<_> = r.migrations.iter().filter_map(|m| m.compat.as_ref().map(|c| (m, c))).collect();
    match broken.iter().any(|(_, c)| !c.broken.is_empty()) {
        false => put!(w, "No migration broke any of them.\n"),
        true => {
            put!(w, "| Migration | Query | Error |\n|---|---|---|");
            for (m, b) in broken.iter().flat_map(|(m, c)| c.broken.iter().map(move |b| (m, b))) {
                put!(w, "| `{}` | `{}` | `{}` {} |", m.id, code_cell(&b.query, 90), b.code, escape(&b.message));
            }
            put!(w);
        }
    }
    if !info.already_broken.is_empty() {
        put!(w, "Already failing before the first migration (not caused by this release):\n");
        for b in &info.already_broken {
            put!(w, "- `{}`: `{}` {}", code_line(&b.query, 200), b.code, b.message);
        }
        put!(w);
    }
}

/// The production checklist, then the per-migration estimate behind two of its items.
fn checklist(w: &mut String, r: &Report) {
    if r.checklist.items.is_empty() {
        return;
    }
    put!(w, "## Production checklist\n");
    put!(w, "Filled from this rehearsal where it has evidence; open items say what a human must do.\n");
    for item in &r.checklist.items {
        put!(w, "- [{}] **{}**", if item.done { "x" } else { " " }, item.title);
        for e in &item.evidence {
            put!(w, "  - {e}");
        }
        if let Some(todo) = &item.todo {
            put!(w, "  - **To do:** {todo}");
        }
    }
    runtime_estimate(w, r);
}

fn runtime_estimate(w: &mut String, r: &Report) {
    let ran: Vec<_> = r.migrations.iter().filter(|m| m.ran()).collect();
    if ran.is_empty() {
        put!(w);
        return;
    }
    let rate = r.checklist.replica_apply_rate_bytes_per_second;
    put!(w, "\n### Runtime and replica lag estimate\n");
    put!(
        w,
        "| Migration | Status | Time | WAL | WAL rate | Replay at {}/s | Est. replica lag |\n|---|---|--:|--:|--:|--:|--:|",
        format_bytes(rate)
    );
    for m in ran {
        let (replay, lag) = replica_lag(m, rate);
        let wal_rate = m.wal.bytes_per_second.map(|b| format!("{}/s", format_bytes(b as u64)));
        put!(
            w,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            m.id,
            m.status.as_str(),
            format_ms(m.duration_ms),
            format_bytes(m.wal.bytes),
            wal_rate.unwrap_or_else(|| "-".into()),
            format_ms(replay),
            format_ms(lag)
        );
    }
    put!(
        w,
        "| **Total** | | **{}** | **{}** | | | |\n",
        format_ms(r.totals.duration_ms),
        format_bytes(r.totals.wal_bytes)
    );
    let lag_at = match r.estimate {
        Some(_) => "; replay and lag use the WAL and time at production scale (the estimates' mid)",
        None => "",
    };
    put!(
        w,
        "Times are measured on this machine ({} CPU(s)); the replica lag is an estimate (see the item above){lag_at}.\n",
        r.machine.cpus
    );
}

fn dump(w: &mut String, r: &Report) {
    put!(w, "## Dump\n");
    if let Some(c) = &r.dump.clone {
        return clone_source(w, r, c);
    }
    if let Some(p) = &r.dump.physical {
        return physical::source(w, r, p);
    }
    put!(w, "- Path: `{}`", r.dump.path);
    if let Some(f) = r.dump.format {
        put!(w, "- Format: {f}");
    }
    put!(w, "- Size: {} ({} bytes)", format_bytes(r.dump.bytes), r.dump.bytes);
    if let Some(sha) = &r.dump.sha256 {
        put!(w, "- sha256: `{sha}`");
    }
    if let Some(db) = r.dump.database_bytes {
        put!(w, "- Restored database size: {}", format_bytes(db.max(0) as u64));
    }
    put!(w, "- Restore: {} with {} job(s)", format_ms(r.restore.duration_ms), r.restore.jobs);
    if !r.restore.roles_created.is_empty() {
        put!(w, "- Roles created for owners and grants: {}", r.restore.roles_created.join(", "));
    }
    tables(w, r, "right after `VACUUM ANALYZE` of the fresh restore");
}

/// The dump section of a clone: what made it, nothing restored.
fn clone_source(w: &mut String, r: &Report, c: &super::CloneSource) {
    let id = c.id.as_ref().map(|id| format!(", id `{id}`")).unwrap_or_default();
    put!(w, "- Source: a clone made by `create` (`{}`{id}), not a file: nothing was restored", c.create);
    if let Some(db) = r.dump.database_bytes {
        put!(w, "- Database size: {}", format_bytes(db.max(0) as u64));
    }
    if c.lazy_load {
        put!(w, "- Its volumes load lazily from a snapshot: first reads were slow (see Environment)");
    }
    tables(w, r, "as the clone's statistics had them (production's, unless the engine analyzed it)");
}

fn tables(w: &mut String, r: &Report, rows_are: &str) {
    if !r.dump.tables.is_empty() {
        put!(w, "\n| Table | Rows | Size |\n|---|--:|--:|");
        for t in r.dump.tables.iter().take(15) {
            put!(w, "| `{}` | {} | {} |", t.name, t.rows, format_bytes(t.bytes.max(0) as u64));
        }
        put!(w, "\nRows are `pg_class.reltuples` {rows_are}.");
    }
}

fn environment(w: &mut String, r: &Report) {
    put!(w, "\n## Environment\n");
    put!(w, "- PostgreSQL {} ({} backend)", r.postgres.version.as_deref().unwrap_or("?"), r.postgres.backend);
    let memory = r.machine.memory_bytes.map(format_bytes).unwrap_or_else(|| "?".into());
    put!(w, "- Machine: {} CPU(s), {memory} RAM", r.machine.cpus);
    let settings = |list: &[super::Setting]| -> String {
        list.iter().map(|s| format!("`{}={}`", s.name, s.value)).collect::<Vec<_>>().join(", ")
    };
    if !r.postgres.settings.is_empty() {
        put!(w, "- Settings during the rehearsal: {}", settings(&r.postgres.settings));
    }
    if !r.postgres.scenario_settings.is_empty() {
        put!(w, "- Prod-like settings from the scenario: {}", settings(&r.postgres.scenario_settings));
    }
    if let Some(p) = &r.production {
        put!(w, "- {}", p.line());
    }
    if let Some(p) = &r.platform {
        put!(w, "- {}", p.line());
    }
    if !r.stages.is_empty() {
        let list: Vec<String> = r.stages.iter().map(|s| format!("{} {}", s.stage, format_ms(s.duration_ms))).collect();
        put!(w, "- Stages: {}", list.join(" · "));
    }
    if let Some(i) = &r.isolation {
        put!(w, "- {}", tool_network(i));
    }
    if let Some(l) = &r.load {
        put!(
            w,
            "- Load generator: {} ms of CPU ({:.0}% of one core while it ran), on the same machine as the server",
            l.generator_cpu_ms,
            l.generator_cpu_share * 100.0
        );
    }
    bullets(
        w,
        Some("\nWhat this rehearsal did not control or observe (`observation.limitations`):"),
        &r.observation.limitations,
    );
    put!(w, "\nTimings are from this machine; production hardware and load differ.");
}

/// The Environment line of `isolation`: the tool's network, how it reached
/// the copy, the variables it did not inherit.
fn tool_network(i: &super::IsolationInfo) -> String {
    let mut line = match (i.network, &i.why) {
        (super::ToolNetworkKind::Namespace, _) => {
            let via = match i.forwarded {
                true => "rehearse's relay (a unix socket in a private directory)",
                false => "the server's unix socket",
            };
            format!("Migration tool's network: a namespace of its own (no TCP to anything); it reached the copy through {via}")
        }
        (super::ToolNetworkKind::Host, why) => {
            format!("Migration tool's network: the host's ({})", why.as_deref().unwrap_or("not isolated"))
        }
    };
    if !i.cleared_env.is_empty() {
        let names: Vec<String> = i.cleared_env.iter().map(|n| format!("`{n}`")).collect();
        line.push_str(&format!(
            "; not passed on from rehearse's environment (they name a database): {}",
            names.join(", ")
        ));
    }
    line
}

/// Text safe inside a Markdown table cell.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// SQL on one line for a table cell: no backticks (they would end the code span).
fn code_cell(sql: &str, max: usize) -> String {
    escape(&code_line(sql, max))
}

/// SQL on one line for a code span outside a table.
fn code_line(sql: &str, max: usize) -> String {
    crate::sys::text::one_line(sql, max).replace('`', "'")
}
