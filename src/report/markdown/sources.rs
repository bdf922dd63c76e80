//! The "Migrations" section: one table, or, when the scenario lists several
//! apps, one table per app with the tables its migrations locked (and which
//! of them another app's migrations changed too), so an app's migration that
//! blocks or rewrites another app's table shows in its own section; then
//! every file a source did not apply, with the reason.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{escape, put};
use crate::pg::{LockMode, RelationKind};
use crate::report::{format_bytes, format_ms, MigrationKind, MigrationReport, Report, SourceReport};

pub(super) fn section(w: &mut String, r: &Report) {
    put!(w, "## Migrations\n");
    if r.sources.len() < 2 {
        table(w, r, |_| true);
        for s in &r.sources {
            skipped(w, s);
        }
        return;
    }
    put!(
        w,
        "{} apps on one database, applied in the order the scenario lists them, each with its own history.\n",
        r.sources.len()
    );
    for s in &r.sources {
        let app = s.app.as_deref().unwrap_or_default();
        put!(w, "### App `{app}`\n");
        let history = s.history.as_deref().map(|h| format!(", history in `{h}`")).unwrap_or_default();
        put!(w, "{} in `{}`{history}: {} pending.\n", s.tool, s.dir, s.pending);
        let mine = |m: &MigrationReport| m.app.as_deref() == Some(app);
        if s.pending > 0 {
            table(w, r, mine);
        }
        touched(w, r, app);
        skipped(w, s);
    }
}

/// The migrations `keep` selects, numbered as in the whole run.
fn table(w: &mut String, r: &Report, keep: impl Fn(&MigrationReport) -> bool) {
    put!(w, "| # | Migration | Status | Time | WAL |");
    put!(w, "|--:|---|---|--:|--:|");
    for (i, m) in r.migrations.iter().enumerate().filter(|(_, m)| keep(m)) {
        let (time, wal) = match m.ran() {
            true => (format_ms(m.duration_ms), format_bytes(m.wal.bytes)),
            false => ("-".into(), "-".into()),
        };
        let kind = match m.kind {
            MigrationKind::Versioned => String::new(),
            k => format!(" ({})", k.as_str()),
        };
        let description = escape(&m.description);
        put!(w, "| {} | `{}`{kind} {description} | {} | {time} | {wal} |", i + 1, m.id, m.status.as_str());
    }
    put!(w);
}

/// The tables an app's migrations locked, strongest mode first, and which
/// other apps' migrations of this release wrote or altered too.
fn touched(w: &mut String, r: &Report, app: &str) {
    let bare = |t: &str| t.rsplit('.').next().unwrap_or(t).to_string();
    let histories: Vec<String> = r.sources.iter().filter_map(|s| s.history.as_deref()).map(bare).collect();
    // The apps' history tables are bookkeeping, not the app's schema.
    let counted = |relation: &str| is_table_name(relation) && !histories.contains(&bare(relation));
    let mut tables: BTreeMap<&str, (LockMode, u64)> = BTreeMap::new();
    for m in r.migrations.iter().filter(|m| m.app.as_deref() == Some(app)) {
        for l in m.locks.iter().filter(|l| is_table(l.kind) && counted(&l.relation)) {
            let e = tables.entry(l.relation.as_str()).or_insert((l.mode, 0));
            *e = (e.0.max(l.mode), e.1.max(l.held_ms));
        }
    }
    if tables.is_empty() {
        return;
    }
    let mut lines: Vec<(LockMode, String)> = tables
        .into_iter()
        .map(|(table, (mode, held))| {
            let others = other_apps_on(r, app, table);
            let also = match others.is_empty() {
                true => String::new(),
                false => format!(" (also written or altered by app {})", others.join(", app ")),
            };
            (mode, format!("`{table}` {} held {}{also}", mode.as_str(), format_ms(held)))
        })
        .collect();
    lines.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let lines: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    put!(w, "Tables its migrations locked: {}.\n", lines.join("; "));
}

/// The other apps whose migrations wrote or altered `table` (a lock at least as strong as RowExclusiveLock).
fn other_apps_on<'a>(r: &'a Report, app: &str, table: &str) -> Vec<&'a str> {
    let mut apps: Vec<&str> = r
        .migrations
        .iter()
        .filter(|m| m.app.as_deref().is_some_and(|a| a != app))
        .filter(|m| m.locks.iter().any(|l| l.relation == table && l.mode >= LockMode::RowExclusiveLock))
        .filter_map(|m| m.app.as_deref())
        .collect();
    apps.dedup();
    apps
}

/// A name, not `oid 12345` (a relation dropped before it could be named).
fn is_table_name(relation: &str) -> bool {
    !relation.starts_with("oid ")
}

fn is_table(kind: RelationKind) -> bool {
    matches!(kind, RelationKind::Table | RelationKind::PartitionedTable)
}

/// The files a source did not apply, each with its reason.
fn skipped(w: &mut String, s: &SourceReport) {
    if s.skipped.is_empty() {
        return;
    }
    put!(w, "Not applied from `{}`:\n", s.dir);
    for f in &s.skipped {
        put!(w, "- `{}`: {}", f.file, f.reason);
    }
    put!(w);
}
