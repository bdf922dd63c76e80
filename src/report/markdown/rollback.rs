//! The "Rollback rehearsal" section (`rollback:`): the release that undoes
//! this one, applied after it; the previous app version's queries against
//! the schema it leaves; what of the schema did not come back; and the
//! values the release dropped, which no rollback brings back.

use std::fmt::Write;

use super::{code_cell, escape, put};
use crate::report::{format_bytes, format_ms, range_ms, summary, Report, RollbackReport};

pub(super) fn section(w: &mut String, r: &Report) {
    let Some(b) = &r.rollback else { return };
    put!(w, "## Rollback rehearsal\n");
    put!(w, "**{}.**\n", summary::capitalize(&b.line()));
    let how = match b.downgrade {
        true => "`alembic downgrade` ran from the release's heads back to production's revision",
        false => "the rollback release (`rollback.migrations`) was applied like any release",
    };
    put!(
        w,
        "Once the release applied, {how} on the rehearsed database, each migration measured as the release's \
         are; the schema after it is compared with a copy of the database taken before the release.\n"
    );
    if b.skipped.is_some() {
        return;
    }
    migrations(w, b);
    if !b.still_broken.is_empty() {
        put!(w, "**Queries of the previous app version that still fail** ({}):\n", b.still_broken.len());
        for q in &b.still_broken {
            put!(w, "- `{}`: {} (`{}`)", code_cell(&q.query, 120), escape(&q.message), q.code);
        }
        put!(w);
    }
    if !b.schema_diff.is_empty() {
        put!(w, "| Object | Kind | After the rollback |");
        put!(w, "|---|---|---|");
        for d in &b.schema_diff {
            put!(w, "| `{}` | {} | {} |", d.object, d.kind, d.change.in_words());
        }
        put!(w);
    }
    if !b.data_loss.is_empty() {
        put!(
            w,
            "**Data the rollback cannot bring back** (rows holding a value right before the drop: on the copy \
             before the release, or on the released database before the rollback; values never shown):\n"
        );
        put!(w, "| Object | Dropped by | Rows with a value before | After the rollback |");
        put!(w, "|---|---|---:|---:|");
        for d in &b.data_loss {
            let after = d.rows_after_rollback.map_or("not there".to_string(), |n| n.to_string());
            put!(w, "| `{}` | the {} (`{}`) | {} | {after} |", d.object, d.dropped_by, d.migration, d.rows);
        }
        put!(
            w,
            "\nWhat the release drops comes back only from a backup; what the rollback drops of the release's \
             additions (here its backfill; in production also what the app wrote since) is lost with it: keep it \
             for a later release, or save it before rolling back.\n"
        );
    }
}

/// The rollback's migrations, one row each, with their hazards below.
fn migrations(w: &mut String, b: &RollbackReport) {
    if b.migrations.is_empty() {
        put!(w, "The rollback had no migration to apply.\n");
        return;
    }
    put!(w, "| Migration | Status | Time | At prod scale | WAL | Longest block | Hazards |");
    put!(w, "|---|---|---:|---:|---:|---:|---|");
    for m in &b.migrations {
        let hazards: Vec<String> = m.hazards.iter().map(|h| format!("`{}`", h.rule)).collect();
        put!(
            w,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            m.id,
            m.status.as_str(),
            format_ms(m.duration_ms),
            m.estimate.as_ref().map_or("-".to_string(), |e| range_ms(e.duration_ms)),
            format_bytes(m.wal.bytes),
            format_ms(m.longest_block()),
            if hazards.is_empty() { "-".to_string() } else { hazards.join(", ") }
        );
    }
    put!(w);
    for m in b.migrations.iter().filter(|m| m.error.is_some()) {
        let error = m.error.as_ref().map(|e| e.message.as_str()).unwrap_or_default();
        put!(w, "`{}` failed:\n\n```\n{}\n```\n", m.id, error.trim_end());
    }
}
