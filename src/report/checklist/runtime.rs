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
    let mut item = Item::new(ChecklistId::RuntimeEstimate, "Estimated runtime documented")
        .evidence(format!(
            "Total {} for {} migration(s){longest}; per migration in the Migrations table and the estimate table below.",
            format_ms(r.totals.duration_ms),
            f.ran.len(),
        ))
        .evidence(format!("Measured on {}, with {}.", f.environment, settings.join(", ")))
        .evidence(production_scale(f));
    let limits = production_limits(f);
    if !limits.is_empty() {
        item = item.evidence(limits);
    }
    item.verdict(match (f.restored, &f.unfinished) {
        (false, _) => Some("Nothing was measured: fix the restore and re-run.".into()),
        (true, Some(u)) => Some(format!("{u}, so the total is unknown: fix and re-run for a complete estimate.")),
        (true, None) => cancelled_in_production(f),
    })
}

/// The to-do when a statement's estimated mid reaches production's
/// statement_timeout: production would cancel it, so the runtime is not one
/// production will see.
fn cancelled_in_production(f: &Facts) -> Option<String> {
    let ids: Vec<String> = f
        .ran
        .iter()
        .filter(|m| m.estimate.as_ref().is_some_and(|e| e.over_statement_timeout.iter().any(|o| o.fails)))
        .map(|m| format!("`{}`", m.id))
        .collect();
    (!ids.is_empty()).then(|| {
        format!(
            "{} would be cancelled by production's statement_timeout at its scale: SET statement_timeout for \
             those migrations or batch them, then re-run.",
            ids.join(", ")
        )
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

/// The statements that reach production's statement_timeout at its scale,
/// and the sorts and hashes that spill there; empty without any.
fn production_limits(f: &Facts) -> String {
    let mut lines = Vec::new();
    for m in &f.ran {
        let Some(e) = &m.estimate else { continue };
        for o in &e.over_statement_timeout {
            lines.push(format!(
                "`{}`: a statement takes {} at production scale against production's statement_timeout {} ({}){}",
                m.id,
                super::super::range_ms(o.estimate_ms),
                format_ms(o.timeout_ms),
                o.timeout_from,
                if o.fails {
                    ": production cancels it; SET statement_timeout for this migration or batch it"
                } else {
                    ""
                }
            ));
        }
        if !e.spills.is_empty() {
            lines.push(format!(
                "`{}`: {} sort(s) or hash(es) spill to disk at production's size",
                m.id,
                e.spills.len()
            ));
        }
    }
    lines.join(". ")
}
