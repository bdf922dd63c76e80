//! The scenario's `load:` as a [`LoadPlan`]: the workload read, the rates
//! and counts checked, before anything starts (bad input exits 3 naming the key).

use std::time::Duration;

use super::scenario::{LongTransactionsSection, Scenario};
use super::Origin;
use crate::error::{ErrorKind, Result};
use crate::estimate::Estimator;
use crate::load::{workload, LoadPlan, LongTransaction, Rate};

const DEFAULT_CLIENTS: u32 = 8;
const DEFAULT_BASELINE: Duration = Duration::from_secs(2);
const DEFAULT_STALL_THRESHOLD: Duration = Duration::from_secs(1);

pub fn plan(s: &Scenario, origin: &Origin, estimate: Option<&Estimator>) -> Result<Option<LoadPlan>> {
    let Some(l) = &s.load else { return Ok(None) };
    let shown = origin.shown();
    let bad = |text: String| ErrorKind::ScenarioInvalid.error(format!("{shown}: {text}"));
    let workload = workload::load(&origin.in_scenario(l.queries.as_str()))?;
    let rate_shown = l.rate.clone().unwrap_or_else(|| "production".into());
    let rate = parse_rate(&rate_shown, "load.rate").map_err(bad)?;
    let window_rate = l.window_rate.as_deref().map(|w| parse_rate(w, "load.window_rate")).transpose().map_err(bad)?;
    if rate == Rate::Production && !workload.has_rates {
        return Err(bad(format!(
            "load.rate is production, but load.queries {} has statements without a rate: export it with \
             `rehearse queries` (which carries each statement's calls per second), put `-- rate: N/s` above each \
             statement, or give load.rate as statements per second (`rate: 50/s`)",
            workload.path.display()
        )));
    }
    let clients = l.clients.unwrap_or(DEFAULT_CLIENTS);
    if clients == 0 {
        return Err(bad("load.clients is 0: give how many sessions replay the workload (8 by default), \
                        at least 1"
            .into()));
    }
    let stall_threshold = l.stall_threshold.unwrap_or(DEFAULT_STALL_THRESHOLD);
    let long_transactions = match &l.long_transactions {
        None => Vec::new(),
        Some(LongTransactionsSection::List(list)) => list
            .iter()
            .map(|t| match t.duration.is_zero() {
                true => Err(bad(format!(
                    "load.long_transactions: the one on {} lasts 0s: give how long it stays open",
                    t.table
                ))),
                false => Ok(LongTransaction { table: t.table.clone(), duration: t.duration }),
            })
            .collect::<Result<_>>()?,
        Some(LongTransactionsSection::Named(name)) if name == "production" => {
            from_production(estimate, stall_threshold).map_err(bad)?
        }
        Some(LongTransactionsSection::Named(name)) => {
            return Err(bad(format!(
                "load.long_transactions is `{name}`: give a list of {{table, duration}}, or `production`"
            )))
        }
    };
    let baseline = l.baseline.unwrap_or(DEFAULT_BASELINE);
    if baseline < Duration::from_millis(100) {
        return Err(bad("load.baseline must be at least 100ms (2s by default)".into()));
    }
    Ok(Some(LoadPlan {
        workload,
        rate,
        rate_shown,
        window_rate,
        clients,
        long_transactions,
        baseline,
        stall_threshold,
    }))
}

/// `long_transactions: production`: what `rehearse stats --activity` saw
/// (the stats file of `estimate.production`), each table with the oldest
/// transaction seen on it, those at least as old as the stall threshold
/// (shorter ones cannot stall the app by that measure). Not capped: a
/// migration waits on production's longest transaction as long as it lasts
/// (`max_runtime` with `on_exceed: cancel` bounds the rehearsal).
fn from_production(
    estimate: Option<&Estimator>,
    threshold: Duration,
) -> std::result::Result<Vec<LongTransaction>, String> {
    let Some(e) = estimate else {
        return Err("load.long_transactions is production, but the scenario has no `estimate.production`: give the \
                    file `rehearse stats --url URL --activity 60s` writes as estimate.production, or list the long \
                    transactions as {table, duration}"
            .into());
    };
    let Some(activity) = &e.stats.activity else {
        return Err(format!(
            "load.long_transactions is production, but {} was made without --activity: run `rehearse stats --url \
             URL --activity 60s` (it samples production's transactions for that long), or list them as {{table, duration}}",
            e.path.display()
        ));
    };
    Ok(activity
        .long_transactions
        .iter()
        .filter(|t| t.max_age_ms >= threshold.as_millis() as i64)
        .map(|t| LongTransaction { table: t.table.clone(), duration: Duration::from_millis(t.max_age_ms as u64) })
        .collect())
}

fn parse_rate(text: &str, key: &str) -> std::result::Result<Rate, String> {
    Rate::parse(text).ok_or_else(|| {
        format!("{key} is `{text}`: give `production`, a multiple of it (`2x`, `0.2x`), or statements per second (`50/s`, `600/min`)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::scenario::parse;

    /// The plan of a scenario whose `load:` is `load` (a workload file `w.sql` beside it).
    fn planned(load: &str, workload: &str) -> Result<Option<LoadPlan>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.sql"), workload).unwrap();
        let path = dir.path().join("s.yaml");
        let s = parse(&format!("migrations: {{tool: sql}}\nload:\n{load}"), &path)?;
        plan(&s, &Origin::new(&path), None)
    }

    const RATED: &str = "-- rate: 5/s\nSELECT 1 FROM t;\n";

    fn refused(load: &str, workload: &str, expected: &[&str]) {
        let e = planned(load, workload).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ScenarioInvalid, "{}", e.render());
        assert_eq!(e.kind().exit_code(), 3);
        for x in expected {
            assert!(e.render().contains(x), "expected {x:?} in {}", e.render());
        }
    }

    #[test]
    fn defaults() {
        let p = planned("  queries: w.sql\n", RATED).unwrap().unwrap();
        assert_eq!(
            (p.rate, p.clients, p.baseline, p.stall_threshold),
            (Rate::Production, 8, DEFAULT_BASELINE, DEFAULT_STALL_THRESHOLD)
        );
        assert!(p.long_transactions.is_empty() && p.window_rate.is_none());
        let p = planned(
            "  queries: w.sql\n  rate: 2x\n  window_rate: 0.2x\n  long_transactions:\n    - {table: orders, duration: 30s}\n",
            RATED,
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.rate, p.window_rate), (Rate::Times(2.0), Some(Rate::Times(0.2))));
        assert_eq!(
            p.long_transactions,
            [LongTransaction { table: "orders".into(), duration: Duration::from_secs(30) }]
        );
    }

    #[test]
    fn bad_input_names_the_key() {
        refused("  queries: w.sql\n  rate: fast\n", RATED, &["load.rate is `fast`", "50/s"]);
        refused("  queries: w.sql\n  window_rate: 3\n", RATED, &["load.window_rate is `3`"]);
        refused("  queries: w.sql\n  clients: 0\n", RATED, &["load.clients is 0"]);
        refused(
            "  queries: w.sql\n",
            "SELECT 1 FROM t;\n",
            &["load.rate is production", "without a rate", "rehearse queries"],
        );
        refused("  queries: w.sql\n  baseline: 10ms\n", RATED, &["load.baseline"]);
        refused(
            "  queries: w.sql\n  long_transactions: sometimes\n",
            RATED,
            &["load.long_transactions is `sometimes`"],
        );
        refused("  queries: w.sql\n  long_transactions:\n    - {table: t, duration: 0s}\n", RATED, &["lasts 0s"]);
        refused("  queries: w.sql\n  clientz: 3\n", RATED, &["clientz"]);
        let missing = planned("  queries: missing.sql\n", RATED).unwrap_err();
        assert_eq!((missing.kind(), missing.kind().exit_code()), (ErrorKind::WorkloadInvalid, 3));
        assert!(missing.render().contains("missing.sql (load.queries)"), "{}", missing.render());
        assert!(
            planned("  queries: w.sql\n  rate: 50/s\n", "SELECT 1 FROM t;\n").is_ok(),
            "a rate of its own needs none in the file"
        );
    }

    #[test]
    fn long_transactions_from_what_stats_activity_saw() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.sql"), RATED).unwrap();
        let demo = include_str!("../../snapshots/demo-prod-stats.json");
        let mut stats: serde_json::Value = serde_json::from_str(demo).unwrap();
        std::fs::write(dir.path().join("plain.json"), stats.to_string()).unwrap();
        stats["activity"] = serde_json::json!({"sampled_seconds": 60.0, "long_transactions": [
            {"table": "public.orders", "max_age_ms": 42000, "sessions_seen": 2},
            {"table": "public.users", "max_age_ms": 12, "sessions_seen": 9}]});
        std::fs::write(dir.path().join("stats.json"), stats.to_string()).unwrap();
        let path = dir.path().join("s.yaml");
        let planned = |estimate: &str| {
            let text = format!(
                "migrations: {{tool: sql}}\n{estimate}load:\n  queries: w.sql\n  long_transactions: production\n"
            );
            let s = parse(&text, &path)?;
            let origin = Origin::new(&path);
            plan(&s, &origin, super::super::estimator(&s, &origin)?.as_ref())
        };
        let p = planned("estimate: {production: stats.json}\n").unwrap().unwrap();
        assert_eq!(
            p.long_transactions,
            [LongTransaction { table: "public.orders".into(), duration: Duration::from_secs(42) }],
            "the 12ms one on users is no long transaction"
        );
        let e = planned("").unwrap_err().render();
        assert!(e.contains("no `estimate.production`") && e.contains("--activity"), "{e}");
        let e = planned("estimate: {production: plain.json}\n").unwrap_err().render();
        assert!(e.contains("plain.json was made without --activity"), "{e}");
    }
}
