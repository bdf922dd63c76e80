//! Replica lag: estimated from WAL, or measured on a standby.

use super::*;

pub(super) fn replica_lag_plan(f: &Facts) -> ChecklistItem {
    let r = f.r;
    let rate = format_bytes(f.s.replica_apply_rate);
    let mut item = Item::new(ChecklistId::ReplicaLag, "Replica lag plan");
    if let Some(big) = f.ran.iter().max_by_key(|m| m.wal.bytes) {
        let at = big.wal.bytes_per_second.map(|b| format!(" at {}/s", format_bytes(b as u64))).unwrap_or_default();
        item = item.evidence(format!(
            "WAL: {} in total; most from `{}`: {}{at}.",
            format_bytes(r.totals.wal_bytes),
            big.id,
            format_bytes(big.wal.bytes),
        ));
    }
    match f.worst_lag {
        Some((m, replay, 0)) => {
            item = item.evidence(format!(
                "Estimated replica lag at {rate}/s replay (`report.replica_apply_rate`): none — every migration's WAL \
                 replays faster than it was written (longest replay: `{}`, {}); per migration in the table below.",
                m.id,
                format_ms(replay)
            ))
        }
        Some((m, replay, lag)) => {
            item = item.evidence(format!(
                "Estimated replica lag at {rate}/s replay (`report.replica_apply_rate`): up to {} after `{}` \
                 (its WAL takes {} to replay); per migration in the table below.",
                format_ms(lag),
                m.id,
                format_ms(replay)
            ))
        }
        None => {}
    }
    if r.estimate.is_some() {
        item = item.evidence(
            "The lag here and in the table below uses each migration's WAL and time at production scale (the \
             estimates' mid)."
                .to_string(),
        );
    }
    item = item.evidence(format!(
        "How it is estimated: lag ≈ WAL ÷ {rate}/s − the migration's time, assuming a replica replays WAL as it \
         arrives at that rate with no other write load. Measure your replicas' replay rate \
         (`pg_stat_replication.replay_lag` under a known write load) and set `report.replica_apply_rate`{}.",
        if r.standby.is_some() { "; the verdict below goes by the standby's measured lag" } else { "" }
    ));
    let lag_todo = match standby_lag(f) {
        Some((evidence, todo)) => {
            item = item.evidence(evidence);
            todo
        }
        None => f.worst_lag.filter(|(_, _, lag)| *lag >= f.ops_ms()).map(|(m, _, lag)| {
            format!(
                "Plan for about {} of replica lag during `{}`: keep reads that need fresh data on the primary, or \
                 batch the change; watch `replay_lag` while it runs.",
                format_ms(lag),
                m.id
            )
        }),
    };
    item.verdict(
        lag_todo
            .or_else(|| f.unless_incomplete(|u| format!("{u}: the estimate covers only what ran; fix and re-run."))),
    )
}

/// With a streaming standby: what it measured (an evidence line) and a
/// to-do when it fell behind, or made its readers wait, for `ops_threshold` or more.
pub(super) fn standby_lag(f: &Facts) -> Option<(String, Option<String>)> {
    let info = f.r.standby.as_ref()?;
    let measured: Vec<(&MigrationReport, &crate::report::StandbyReport)> =
        f.ran.iter().filter_map(|m| m.standby.as_ref().map(|s| (*m, s))).collect();
    let (lagging, lag) = measured.iter().max_by_key(|(_, s)| s.max_lag_ms)?;
    let read_wait =
        |s: &crate::report::StandbyReport| s.read_waits.iter().map(|w| w.max_ms.round() as u64).max().unwrap_or(0);
    let (blocking, blocked) = measured.iter().max_by_key(|(_, s)| read_wait(s))?;
    let conflicts: u64 = measured.iter().map(|(_, s)| s.conflicts).sum();
    let slowest_catch_up = measured.iter().filter_map(|(_, s)| s.catch_up_ms).max().unwrap_or(0);
    let evidence = format!(
        "Measured on a streaming hot standby ({} backend, `{}`): at most {} ({}) behind, during `{}`; caught up \
         within {} of each migration's end; standby reads waited up to {} (during `{}`); {conflicts} standby \
         quer(ies) cancelled by recovery conflicts.",
        info.source,
        info.server,
        format_ms(lag.max_lag_ms),
        format_bytes(lag.max_lag_bytes),
        lagging.id,
        format_ms(slowest_catch_up),
        format_ms(read_wait(blocked)),
        blocking.id,
    );
    let ops = f.ops_ms();
    let mut todo = Vec::new();
    if lag.max_lag_ms >= ops {
        todo.push(format!(
            "the standby fell {} behind during `{}`: keep reads that need fresh data on the primary, or batch the \
             change; watch `replay_lag` while it runs",
            format_ms(lag.max_lag_ms),
            lagging.id
        ));
    }
    if read_wait(blocked) >= ops {
        todo.push(format!(
            "reads on the standby waited {} during `{}` (its lock is replayed there): move those reads to the \
             primary for the release, or take the lock with a short lock_timeout and retry",
            format_ms(read_wait(blocked)),
            blocking.id
        ));
    }
    if conflicts > 0 {
        todo.push(format!(
            "{conflicts} standby quer(ies) were cancelled by recovery conflicts: expect the same on production's \
             replicas, or raise max_standby_streaming_delay there"
        ));
    }
    let todo = (!todo.is_empty()).then(|| format!("Measured on the standby: {}.", todo.join("; ")));
    Some((evidence, todo))
}
