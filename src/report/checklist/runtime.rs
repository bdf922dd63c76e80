//! Runtime estimate, at production's scale when the run has one.

use super::*;

pub(super) fn runtime_estimate(f: &Facts) -> ChecklistItem {
    let r = f.r;
    let longest = f.longest.map(|m| format!(", longest `{}` {}", m.id, format_ms(m.duration_ms))).unwrap_or_default();
    let settings: Vec<String> = r
        .postgres
        .settings
        .iter()
        .filter(|s| ["shared_buffers", "maintenance_work_mem", "max_wal_size", "work_mem"].contains(&s.name.as_str()))
        .map(|s| format!("{}={}", s.name, s.value))
        .collect();
    Item::new(ChecklistId::RuntimeEstimate, "Estimated runtime documented")
        .evidence(format!(
            "Total {} for {} migration(s){longest}; per migration in the Migrations table and the estimate table below.",
            format_ms(r.totals.duration_ms),
            f.ran.len(),
        ))
        .evidence(format!("Measured on {}, with {}.", f.environment, settings.join(", ")))
        .evidence(production_scale(f))
        .verdict(match (f.restored, &f.unfinished) {
            (false, _) => Some("Nothing was measured: fix the restore and re-run.".into()),
            (true, Some(u)) => Some(format!("{u}, so the total is unknown: fix and re-run for a complete estimate.")),
            (true, None) => None,
        })
}

/// What the runtime means for production: the estimate at its scale, or the caveat.
pub(super) fn production_scale(f: &Facts) -> String {
    let r = f.r;
    let (Some(info), Some(total)) = (&r.estimate, &r.totals.estimate) else {
        return "Production hardware, data volume, cache state and concurrent load differ: read these as an estimate \
                and an order of magnitude, not a promise (an `estimate:` with production's statistics scales them)."
            .into();
    };
    let longest = f.ran.iter().max_by_key(|m| duration(m)).and_then(|m| {
        m.estimate.as_ref().map(|e| format!(", longest `{}` {}", m.id, super::super::range_ms(e.duration_ms)))
    });
    format!(
        "At production scale: {} in total{} (estimated from production's statistics `{}`, database `{}` read {}, \
         speed ×{}; per migration under \"At production scale\"). Cache state, concurrent load and disk speed still differ.",
        super::super::range_ms(total.duration_ms),
        longest.unwrap_or_default(),
        info.production,
        info.database,
        info.taken_at,
        info.speed
    )
}
