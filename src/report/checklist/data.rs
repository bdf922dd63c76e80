//! Prod-shaped data: where the rehearsed data came from.

use super::compat::file_name;
use super::*;

/// Where the rehearsed data came from: a dump restored, or a clone made.
pub(super) fn data_evidence(f: &Facts) -> String {
    let r = f.r;
    if let Some(c) = &r.dump.clone {
        let id = c.id.as_ref().map(|id| format!(" `{id}`")).unwrap_or_default();
        let size = r
            .dump
            .database_bytes
            .map(|db| format!(": {} database", format_bytes(db.max(0) as u64)))
            .unwrap_or_default();
        return format!(
            "A clone{id} of production made by `{}` (postgres.clone.create), in {}{size}.",
            c.create, f.environment
        );
    }
    let dump_name = file_name(&r.dump.path);
    let restored = match (&r.restore.restored_at, r.dump.database_bytes) {
        (Some(at), Some(db)) => format!(
            " restored at {at} in {} into {}: {} database",
            format_ms(r.restore.duration_ms),
            f.environment,
            format_bytes(db.max(0) as u64)
        ),
        (Some(at), None) => format!(" restored at {at}"),
        _ => ": not restored".into(),
    };
    let format = r.dump.format.map(|f| f.to_string()).unwrap_or_else(|| "?".into());
    format!(
        "Dump `{dump_name}` ({format}, {}, sha256 `{}`){restored}.",
        format_bytes(r.dump.bytes),
        r.dump.sha256.as_deref().unwrap_or("?"),
    )
}

pub(super) fn prod_shaped_data(f: &Facts) -> ChecklistItem {
    let r = f.r;
    let mut item =
        Item::new(ChecklistId::ProdShapedData, "Tested in staging with prod-shaped data").evidence(data_evidence(f));
    if !r.dump.tables.is_empty() {
        let tables: Vec<String> = r
            .dump
            .tables
            .iter()
            .take(5)
            .map(|t| format!("{} {} rows ({})", t.name, t.rows, format_bytes(t.bytes.max(0) as u64)))
            .collect();
        item = item.evidence(format!("Largest tables: {}.", tables.join(", ")));
    }
    if f.restored {
        item = item.evidence(format!(
            "{} of {} pending migration(s) applied to it.",
            r.totals.applied,
            r.migrations.len()
        ));
    }
    // Whether production's schema is the history's: what a fresh environment built from it would differ by.
    if let Some(drift) = &r.drift {
        let see = if drift.findings.is_empty() {
            ""
        } else {
            " (see Drift): environments built from the history differ from production"
        };
        item = item.evidence(format!("Drift check: {}{see}.", summary::drift_line(drift)));
    }
    item.verdict(match (f.restored, &f.unfinished) {
        (false, _) => Some("The restore did not complete (see the error at the top): fix it and re-run.".into()),
        (true, Some(u)) => Some(format!("{u}: fix and re-run the rehearsal.")),
        (true, None) => None,
    })
}
