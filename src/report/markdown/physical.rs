//! The "Dump" section of a physical copy: which backup, recovered how far,
//! and what the copy and the recovery took (or that the snapshot cache held it).

use std::fmt::Write;

use super::put;
use crate::report::{format_bytes, format_ms, CacheStatus, PhysicalInfo, Report};

/// The opening line's "where the data came from".
pub(super) fn origin(p: &PhysicalInfo) -> String {
    format!("recovered from the physical backup `{}`", p.source)
}

pub(super) fn source(w: &mut String, r: &Report, p: &PhysicalInfo) {
    let label = p.label.as_ref().map(|l| format!(", label `{l}`")).unwrap_or_default();
    put!(
        w,
        "- Source: physical backup `{}` ({}{label}), PostgreSQL {}",
        p.source,
        p.kind,
        p.pg_version.as_deref().unwrap_or("?")
    );
    if let Some(start) = &p.start_lsn {
        let end = p.end_lsn.as_deref().unwrap_or("?");
        let at = p.started_at.as_ref().map(|t| format!(", started {t}")).unwrap_or_default();
        put!(w, "- Backup WAL range: {start} to {end}{at}");
    }
    let target = match &p.target_value {
        Some(v) => format!("{} {v}", p.target),
        None => p.target.to_string(),
    };
    let to = p.recovered_to.as_ref().map(|t| format!("; last transaction replayed at {t}")).unwrap_or_default();
    put!(w, "- Recovered to: {target}{to}, then promoted");
    let replayed = p.wal_replayed_bytes.map(|b| format!(", {} of WAL replayed", format_bytes(b))).unwrap_or_default();
    put!(
        w,
        "- Copy: {} in {}; recovery: {}{replayed}",
        format_bytes(p.copied_bytes),
        format_ms(p.copy_ms),
        format_ms(p.recovery_ms)
    );
    if r.restore.cache == Some(CacheStatus::Hit) {
        let made = r.restore.restored_at.as_deref().unwrap_or("?");
        let key = r.restore.cache_key.as_deref().unwrap_or("?");
        put!(w, "- From the snapshot cache (entry `{key}`, made {made}): nothing copied or replayed in this run");
    }
    let others: Vec<&str> = p.databases.iter().map(String::as_str).filter(|d| *d != p.database).collect();
    match others.is_empty() {
        true => put!(w, "- Rehearsed database: `{}`", p.database),
        false => put!(w, "- Rehearsed database: `{}`; present and untouched: {}", p.database, others.join(", ")),
    }
    if let Some(db) = r.dump.database_bytes {
        put!(w, "- Database size: {}", format_bytes(db.max(0) as u64));
    }
    super::tables(w, r, "as production's own statistics had them (in the backup)");
}
