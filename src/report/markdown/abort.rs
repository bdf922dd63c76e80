//! The "Abort rehearsal" section: each migration cancelled part-way on a
//! fresh copy, what it left, and the recovery in a code block that pastes
//! into a runbook.

use std::fmt::Write;

use super::put;
use crate::report::{format_ms, summary, AbortReport, Report, VersionTableMove};

pub(super) fn section(w: &mut String, r: &Report) {
    if r.abort.is_empty() {
        return;
    }
    put!(w, "## Abort rehearsal\n");
    put!(
        w,
        "Each migration below was started on a fresh copy of the database as it was before this release and \
         cancelled as an operator would (SQL files: `pg_cancel_backend` of its session; a tool: SIGINT to its \
         process group); the recovery was run on the copy, then the migration again.\n"
    );
    for a in &r.abort {
        one(w, a);
    }
}

fn one(w: &mut String, a: &AbortReport) {
    put!(w, "### `{}` at {}\n", a.migration, a.at);
    put!(w, "{}.\n", summary::capitalize(&a.line(true)));
    let ms = |v: Option<u64>| v.map(format_ms).unwrap_or_else(|| "-".into());
    if a.cancelled_at_ms.is_some() {
        put!(w, "| Cancelled after | Locks gone after the cancel | App's reads back after the cancel |");
        put!(w, "|---|---|---|");
        let probed = a.probed_table.as_ref().map(|t| format!(" (`{t}`)")).unwrap_or_default();
        put!(w, "| {} | {} | {}{probed} |\n", ms(a.cancelled_at_ms), ms(a.locks_released_ms), ms(a.app_resumed_ms));
    }
    if !a.leftovers.is_empty() {
        put!(w, "Left behind:\n");
        for l in &a.leftovers {
            let invalid = if l.invalid { " — **INVALID** (`pg_index.indisvalid = false`)" } else { "" };
            put!(w, "- {} `{}`{invalid}", l.kind, l.object);
        }
        put!(w);
    }
    if let Some(v) = &a.version_table {
        match v.state {
            VersionTableMove::Unchanged => put!(w, "Version table `{}`: unchanged.\n", v.table),
            VersionTableMove::Moved => {
                put!(
                    w,
                    "Version table `{}`: **moved**, from {} to {}.\n",
                    v.table,
                    v.before.join(", "),
                    v.after.join(", ")
                )
            }
        }
    }
    if !a.recovery.is_empty() {
        put!(w, "Recovery (run on the copy):\n\n```sql");
        for c in &a.recovery {
            put!(w, "{c}");
        }
        put!(w, "```\n");
    }
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    put!(
        w,
        "Schema back to before the migration: {}. The migration runs again after the recovery: {}.\n",
        yes(a.recovered),
        yes(a.rerun_ok)
    );
    if let Some(e) = &a.error {
        put!(w, "Note: {e}\n");
    }
}
