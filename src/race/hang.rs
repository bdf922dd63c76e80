//! A hang explained: the copies' sessions at the deadline, who waits for
//! whom (`pg_blocking_pids`), and the cycle among them when there is one.
//!
//! PostgreSQL's deadlock detector follows only waits inside the server. A
//! session that is idle waits for its client; when that client (a copy) is
//! itself blocked on another of its sessions, the wait continues through the
//! client, where the detector cannot follow. The classic case: a copy holds
//! an advisory lock on one session and builds an index CONCURRENTLY on
//! another; the build waits for every older snapshot to end (a virtualxid
//! lock), among them another copy's session waiting in pg_advisory_lock for
//! the first copy's lock. Each edge through a client is added here, so such
//! a cycle is found and named as one PostgreSQL cannot see.

use std::collections::BTreeMap;
use std::time::Duration;

use super::watch::{copy_of, Sample};
use crate::catalog::RaceSession;
use crate::report::{RaceHang, WaitLink};
use crate::sys::text::one_line;

/// The hang at the deadline, from the reading taken then.
pub fn explain(sample: &Sample, after: Duration, redact: &dyn Fn(&str) -> String) -> RaceHang {
    let chain: Vec<WaitLink> = sample
        .sessions
        .iter()
        .map(|s| WaitLink {
            pid: s.pid,
            copy: copy_of(s),
            state: s.state,
            wait_event_type: s.wait_event_type.clone(),
            wait_event: s.wait_event.clone(),
            query: redact(&s.query),
            blocked_by: s.blocked_by.clone(),
        })
        .collect();
    let edges = edges(&sample.sessions);
    let cycle = find_cycle(&edges);
    let invisible_to_postgres = cycle_edges(&cycle).any(|(a, b)| edges[&a].iter().any(|e| e.to == b && e.client));
    let summary = match cycle.is_empty() {
        true => no_cycle(&sample.sessions),
        false => describe(&cycle, &edges, &sample.sessions, invisible_to_postgres),
    };
    RaceHang { after_ms: after.as_millis() as u64, chain, cycle, invisible_to_postgres, summary: redact(&summary) }
}

/// `a` waits for `to`: inside PostgreSQL, or (`client`) through the copy
/// that owns both sessions.
struct Edge {
    to: i32,
    client: bool,
}

fn edges(sessions: &[RaceSession]) -> BTreeMap<i32, Vec<Edge>> {
    let waiting = |s: &RaceSession| s.wait_event_type.as_deref() == Some("Lock");
    sessions
        .iter()
        .map(|s| {
            let mut out: Vec<Edge> = s.blocked_by.iter().map(|&to| Edge { to, client: false }).collect();
            // An idle session does nothing until its client sends the next
            // statement; a client blocked on its other session sends none.
            if s.state.is_idle() && copy_of(s).is_some() {
                let siblings = sessions.iter().filter(|o| o.pid != s.pid && copy_of(o) == copy_of(s) && waiting(o));
                out.extend(siblings.map(|o| Edge { to: o.pid, client: true }));
            }
            (s.pid, out)
        })
        .collect()
}

/// A cycle in the wait graph, as pids in order (each waits for the next,
/// the last for the first); empty when there is none.
fn find_cycle(edges: &BTreeMap<i32, Vec<Edge>>) -> Vec<i32> {
    for &start in edges.keys() {
        let mut path = vec![start];
        if let Some(cycle) = walk(edges, &mut path) {
            return cycle;
        }
    }
    Vec::new()
}

/// Depth first from the end of `path`; the cycle found, from where it closes.
fn walk(edges: &BTreeMap<i32, Vec<Edge>>, path: &mut Vec<i32>) -> Option<Vec<i32>> {
    let here = *path.last()?;
    for e in edges.get(&here).into_iter().flatten() {
        if let Some(at) = path.iter().position(|p| *p == e.to) {
            return Some(path[at..].to_vec());
        }
        if !edges.contains_key(&e.to) {
            continue;
        }
        path.push(e.to);
        if let Some(cycle) = walk(edges, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

/// Consecutive pairs of a cycle, the last back to the first.
fn cycle_edges(cycle: &[i32]) -> impl Iterator<Item = (i32, i32)> + '_ {
    cycle.iter().enumerate().map(|(i, a)| (*a, cycle[(i + 1) % cycle.len()]))
}

/// "copy 3's session 29047"
fn who(pid: i32, sessions: &[RaceSession]) -> String {
    match sessions.iter().find(|s| s.pid == pid).and_then(copy_of) {
        Some(copy) => format!("copy {copy}'s session {pid}"),
        None => format!("session {pid} (not a copy's)"),
    }
}

fn describe(cycle: &[i32], edges: &BTreeMap<i32, Vec<Edge>>, sessions: &[RaceSession], invisible: bool) -> String {
    let steps: Vec<String> = cycle_edges(cycle)
        .map(|(a, b)| {
            let s = sessions.iter().find(|s| s.pid == a);
            let query = s.map(|s| one_line(&s.query, 80)).unwrap_or_default();
            let client =
                edges[&a].iter().any(|e| e.to == b && e.client && !s.is_some_and(|s| s.blocked_by.contains(&b)));
            match client {
                true => format!(
                    "{} is {} (last `{query}`): its client waits for {}",
                    who(a, sessions),
                    s.map(|s| s.state.as_str()).unwrap_or("idle"),
                    who(b, sessions)
                ),
                false => format!(
                    "{} (`{query}`) waits for {} ({})",
                    who(a, sessions),
                    who(b, sessions),
                    s.and_then(|s| s.wait_event.as_deref()).unwrap_or("a lock")
                ),
            }
        })
        .collect();
    let end = match invisible {
        true => {
            "a wait cycle through a client, which PostgreSQL's deadlock detector cannot see: it never ends by itself"
        }
        false => "a wait cycle inside PostgreSQL, which its deadlock detector should have broken",
    };
    format!("{}; {end}", steps.join("; "))
}

/// What the copies were doing at the deadline when none waited in a cycle.
fn no_cycle(sessions: &[RaceSession]) -> String {
    let waiting: Vec<String> = sessions
        .iter()
        .filter(|s| !s.blocked_by.is_empty())
        .map(|s| {
            let blockers: Vec<String> = s.blocked_by.iter().map(|b| who(*b, sessions)).collect();
            format!("{} (`{}`) waits for {}", who(s.pid, sessions), one_line(&s.query, 80), blockers.join(", "))
        })
        .collect();
    match waiting.is_empty() {
        true => "no copy was waiting on a lock at the deadline: the copies were still working (is race.timeout \
                 too short for them?)"
            .into(),
        false => format!("no wait cycle: {}", waiting.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::ActivityState;

    fn session(
        pid: i32,
        copy: usize,
        state: ActivityState,
        wait: Option<&str>,
        query: &str,
        blocked_by: &[i32],
    ) -> RaceSession {
        RaceSession {
            pid,
            application_name: super::super::watch::application_name(copy),
            state,
            wait_event_type: wait.map(|_| "Lock".to_string()),
            wait_event: wait.map(String::from),
            query: query.into(),
            running_ms: 0,
            blocked_by: blocked_by.to_vec(),
        }
    }

    #[test]
    fn an_index_build_waiting_on_a_copy_that_waits_for_the_builder_s_lock_is_a_cycle_postgres_cannot_see() {
        // As measured on PostgreSQL 15 with tests/fixtures/alembic_race (RACE_LOCK=blocking).
        let sample = Sample {
            at: Duration::from_secs(8),
            sessions: vec![
                session(10, 3, ActivityState::Idle, None, "COMMIT", &[]),
                session(
                    11,
                    3,
                    ActivityState::Active,
                    Some("virtualxid"),
                    "CREATE INDEX CONCURRENTLY orders_total_idx",
                    &[13],
                ),
                session(12, 2, ActivityState::Active, Some("advisory"), "SELECT pg_advisory_lock($1)", &[10]),
                session(13, 1, ActivityState::Active, Some("advisory"), "SELECT pg_advisory_lock($1)", &[10, 12]),
            ],
            locks: Vec::new(),
        };
        let hang = explain(&sample, Duration::from_secs(8), &|s| s.to_string());
        assert_eq!(hang.cycle, [10, 11, 13]);
        assert!(hang.invisible_to_postgres);
        assert!(hang.summary.contains("copy 3's session 11 (`CREATE INDEX CONCURRENTLY orders_total_idx`) waits for copy 1's session 13 (virtualxid)"), "{}", hang.summary);
        assert!(hang.summary.contains("its client waits for copy 3's session 11"), "{}", hang.summary);
        assert_eq!(hang.chain.len(), 4);
    }

    #[test]
    fn waits_without_a_cycle_are_listed_and_a_cycle_inside_postgres_is_told_apart() {
        let plain = Sample {
            sessions: vec![
                session(20, 1, ActivityState::Active, Some("relation"), "ALTER TABLE t ADD c int", &[21]),
                session(21, 2, ActivityState::Active, None, "SELECT pg_sleep(60)", &[]),
            ],
            ..Sample::default()
        };
        let hang = explain(&plain, Duration::from_secs(1), &|s| s.to_string());
        assert!(hang.cycle.is_empty() && !hang.invisible_to_postgres);
        assert!(hang.summary.starts_with("no wait cycle: copy 1's session 20"), "{}", hang.summary);
        let inside = Sample {
            sessions: vec![
                session(30, 1, ActivityState::Active, Some("transactionid"), "UPDATE a", &[31]),
                session(31, 2, ActivityState::Active, Some("transactionid"), "UPDATE b", &[30]),
            ],
            ..Sample::default()
        };
        let hang = explain(&inside, Duration::from_secs(1), &|s| s.to_string());
        assert_eq!(hang.cycle, [30, 31]);
        assert!(!hang.invisible_to_postgres);
    }
}
