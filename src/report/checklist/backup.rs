//! A backup before the release.

use super::*;

pub(super) fn backup(f: &Facts) -> ChecklistItem {
    let r = f.r;
    let mut item = Item::new(ChecklistId::Backup, "Backup available");
    if let Some(db) = r.dump.database_bytes {
        item = item.evidence(format!(
            "{} database size: {} (before the migrations).",
            if r.dump.clone.is_some() { "Cloned" } else { "Restored" },
            format_bytes(db.max(0) as u64)
        ));
    }
    item = item.evidence(match &r.backup {
        Some(b) => match (b.duration_ms, b.bytes, &b.error) {
            (Some(ms), Some(bytes), None) => format!(
                "Measured: `{}` of the rehearsal database ({} after the migrations) took {} and wrote {} on this machine.",
                b.command,
                b.database_bytes.map(|d| format_bytes(d.max(0) as u64)).unwrap_or_else(|| "?".into()),
                format_ms(ms),
                format_bytes(bytes)
            ),
            _ => format!("Measuring `{}` failed: {}.", b.command, b.error.as_deref().unwrap_or("unknown error")),
        },
        None => {
            "Not measured: set `report.measure_backup: true` to time a `pg_dump -Fc` of the rehearsal database.".into()
        }
    });
    item.verdict(Some(
        "Confirm production has a recent backup or point-in-time recovery covering this release, and how long \
         restoring it takes, before running the migrations."
            .into(),
    ))
}
