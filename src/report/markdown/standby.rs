//! The streaming standby in `report.md`: what it was, and per migration how
//! far it fell behind and what its readers waited.

use std::fmt::Write;

use super::put;
use crate::kinds::BackendKind;
use crate::report::{format_bytes, format_ms, MigrationReport, Report, StandbyReport};

/// `## Streaming standby`: the standby as rehearsed and a row per migration.
pub fn section(w: &mut String, r: &Report) {
    let Some(info) = &r.standby else { return };
    put!(w, "## Streaming standby\n");
    let source = match info.source {
        BackendKind::Url => "the standby `observe.standby_url` names".to_string(),
        backend => format!("a hot standby this run started from the primary ({backend} backend, pg_basebackup)"),
    };
    let settings: Vec<String> = info.settings.iter().map(|s| format!("{}={}", s.name, s.value)).collect();
    put!(
        w,
        "Measured on {source}: `{}`, with {}. Lag read every {} (bytes: the primary's `pg_current_wal_lsn()` less \
         the standby's `pg_last_wal_replay_lsn()`; time: the standby's clock less the newest heartbeat it replayed); \
         threshold {}.\n",
        info.server,
        settings.join(", "),
        format_ms(info.interval_ms),
        format_ms(info.lag_threshold_ms)
    );
    put!(w, "| Migration | Bytes behind | Time behind | Over threshold | Caught up after | Longest read wait | Cancelled queries |");
    put!(w, "|---|--:|--:|--:|--:|--:|--:|");
    for m in r.migrations.iter() {
        let Some(s) = &m.standby else { continue };
        put!(
            w,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            m.id,
            format_bytes(s.max_lag_bytes),
            format_ms(s.max_lag_ms),
            format_ms(s.over_threshold_ms),
            caught_up(s),
            longest_read_wait(s).unwrap_or_else(|| "-".into()),
            s.conflicts
        );
    }
    put!(
        w,
        "\nA read on the standby waits while the primary's ACCESS EXCLUSIVE lock is replayed there (the standby \
         learns of it as soon as its WAL is flushed: the heartbeat's commits flush it, as production's traffic \
         does). A standby query that holds up replay longer than `max_standby_streaming_delay` is cancelled.\n"
    );
}

/// The per-migration line under its figures.
pub fn migration_line(w: &mut String, m: &MigrationReport) {
    let Some(s) = &m.standby else { return };
    let mut line = format!(
        "- Standby: up to {} and {} behind, {} over the threshold, caught up {} after the migration",
        format_bytes(s.max_lag_bytes),
        format_ms(s.max_lag_ms),
        format_ms(s.over_threshold_ms),
        caught_up(s)
    );
    if let Some(wait) = longest_read_wait(s) {
        let _ = write!(line, "; longest read wait {wait}");
    }
    if s.conflicts > 0 {
        let _ = write!(line, "; {} standby quer(ies) cancelled by recovery conflicts", s.conflicts);
    }
    put!(w, "{line}");
}

fn caught_up(s: &StandbyReport) -> String {
    match s.catch_up_ms {
        Some(ms) => format_ms(ms),
        None => "not within 10 min".into(),
    }
}

/// "1.0s on `public.orders`" for the longest wait over a millisecond.
fn longest_read_wait(s: &StandbyReport) -> Option<String> {
    let w = s.read_waits.iter().max_by(|a, b| a.max_ms.total_cmp(&b.max_ms))?;
    (w.max_ms >= 1.0).then(|| format!("{} on `{}`", format_ms(w.max_ms.round() as u64), w.relation))
}
