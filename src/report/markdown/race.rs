//! `## Racing replicas` in `report.md`: the verdict, each copy, the lock
//! they took turns on, kill_one's kill, a hang and its wait chain, and how
//! the end state differs from the sequential rehearsal's.

use std::fmt::Write;

use super::{code_cell, code_line, escape, put};
use crate::report::{
    format_ms, summary, BarrierRelease, RaceBarrier, RaceCopy, RaceHang, RaceKill, RaceReport, RaceVerdict,
};

pub fn section(w: &mut String, r: &crate::report::Report) {
    let Some(race) = &r.race else { return };
    put!(w, "## Racing replicas\n");
    put!(w, "**{}**: {}.\n", race.verdict.as_str(), summary::race_line(race, true));
    put!(
        w,
        "{} copies of `{}` started at once (each after a random delay up to {}) on `{}`, a fresh copy of the \
         restored database, as replicas running it at start-up would; deadline {}.\n",
        race.replicas,
        race.command,
        format_ms(race.jitter_ms),
        race.database,
        format_ms(race.timeout_ms)
    );
    if let Some(b) = &race.barrier {
        put!(w, "{}\n", barrier(b));
    }
    copies(w, race);
    lock(w, race);
    if let Some(kill) = &race.kill {
        killed(w, kill, race);
    }
    if let Some(hang) = &race.hang {
        hung(w, hang);
    }
    end_state(w, race);
    if race.verdict != RaceVerdict::Safe {
        put!(w, "Why {}:\n", race.verdict.as_str());
        for reason in &race.reasons {
            put!(w, "- {}", escape(reason));
        }
        put!(w);
    }
    outputs(w, race);
}

/// What held the copies until they met, and when it let them go.
fn barrier(b: &RaceBarrier) -> String {
    let held = format!("rehearse held them at a barrier (ACCESS EXCLUSIVE on {})", code_list(&b.tables));
    let at = b.released_ms.map(format_ms).unwrap_or_default();
    let without = match b.missing.is_empty() {
        true => String::new(),
        false => format!(", without {}, which had not reached the database", summary::copies_text(&b.missing)),
    };
    match (b.release, b.released_ms) {
        (BarrierRelease::NotHeld, _) => "No barrier held them: the race's database has no version table to hold, \
                                         so each copy went on as soon as it started."
            .into(),
        (_, None) => format!("{held}; the race ended before it let them go."),
        (BarrierRelease::AllArrived, _) => {
            format!("{held} until every copy had reached the database, then let them go together at {at}.")
        }
        (BarrierRelease::Patience, _) => format!("{held} and let them go at {at}, half the deadline{without}."),
        (BarrierRelease::TimeoutSetting, _) => format!(
            "{held} and let them go at {at}, before the first one's wait reached half the lock, statement or \
             transaction timeout the copies run under{without}."
        ),
    }
}

fn code_list(items: &[String]) -> String {
    summary::and_list(&items.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>())
}

fn copies(w: &mut String, race: &RaceReport) {
    put!(
        w,
        "| Copy | Exit | Waited on locks | Started | At the database | Ended | Error |\n|--:|--:|--:|--:|--:|--:|---|"
    );
    for c in &race.copies {
        let name = match (c.fresh, c.killed) {
            (true, _) => format!("{} (fresh)", c.copy),
            (_, true) => format!("{} (killed)", c.copy),
            _ => c.copy.to_string(),
        };
        let exit = c.exit.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        let ended = c.finished_ms.map(format_ms).unwrap_or_else(|| "-".into());
        let error = match (c.failure, &c.error) {
            (Some(f), Some(e)) => format!("{}: {}", f.in_words(), code_cell(e, 200)),
            (Some(f), None) => f.in_words().to_string(),
            (None, _) => String::new(),
        };
        let seen = match (c.first_seen_ms, c.last_seen_ms) {
            (Some(first), Some(last)) => format!("{}–{}", format_ms(first), format_ms(last)),
            _ => "-".into(),
        };
        put!(
            w,
            "| {name} | {exit} | {} | {} | {seen} | {ended} | {error} |",
            format_ms(c.waited_ms),
            format_ms(c.started_ms)
        );
    }
    put!(
        w,
        "\nLock waits are sampled every 50ms (`pg_stat_activity.wait_event_type = 'Lock'`), from the barrier's \
         release on; \"At the database\": from the first to the last reading that showed a session of the copy.\n"
    );
}

fn lock(w: &mut String, race: &RaceReport) {
    let Some(l) = &race.lock else {
        put!(w, "No advisory lock was seen: nothing made the copies take turns.\n");
        return;
    };
    let waited = match l.waiters.is_empty() {
        true => "none waited for it inside PostgreSQL (a copy polling pg_try_advisory_lock waits in its own code)"
            .to_string(),
        false => format!("{} waited for it inside PostgreSQL (pg_advisory_lock)", summary::copies_text(&l.waiters)),
    };
    let held = match l.holders.len() {
        1 => summary::copies_text(&l.holders),
        _ => format!("{}, in that order", summary::copies_text(&l.holders)),
    };
    put!(w, "The copies used {}: held by {held}; {waited}.\n", summary::lock_name(l));
}

fn killed(w: &mut String, kill: &RaceKill, race: &RaceReport) {
    put!(w, "**kill_one** killed copy {} with SIGKILL at {}, {}.", kill.copy, format_ms(kill.at_ms), kill.doing);
    for s in &kill.survivors {
        put!(
            w,
            "- Its session {} outlived it by {} (last `{}`): the server notices a client is gone only when it \
             next reads from or writes to it.",
            s.pid,
            format_ms(s.seen_ms),
            code_line(&s.query, 120)
        );
    }
    if let Some(stale) = &kill.stale_lock {
        put!(
            w,
            "- A stale lock: its session {} blocked copy {} for {} (waiting on {}).",
            stale.pid,
            stale.blocked_copy,
            format_ms(stale.blocked_ms),
            stale.wait_event
        );
    }
    let fresh: Vec<&RaceCopy> = race.copies.iter().filter(|c| c.fresh).collect();
    for c in fresh {
        let outcome = match c.failure {
            None => "finished (exit 0)".to_string(),
            Some(f) => format!("did not finish: {}", f.in_words()),
        };
        put!(w, "- The fresh copy {} started once the others had ended, and {outcome}.", c.copy);
    }
    put!(w);
}

fn hung(w: &mut String, hang: &RaceHang) {
    put!(w, "**Hang** at the deadline ({}): {}.\n", format_ms(hang.after_ms), escape(&hang.summary));
    put!(
        w,
        "| Session | Copy | State | Waits on | Blocked by (`pg_blocking_pids`) | Query |\n|--:|--:|---|---|---|---|"
    );
    for l in &hang.chain {
        let copy = l.copy.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        let waits = match (&l.wait_event_type, &l.wait_event) {
            (Some(t), Some(e)) => format!("{t}: {e}"),
            _ => "-".into(),
        };
        let blockers: Vec<String> = l.blocked_by.iter().map(|p| p.to_string()).collect();
        let in_cycle = if hang.cycle.contains(&l.pid) { " ↻" } else { "" };
        put!(
            w,
            "| {}{in_cycle} | {copy} | {} | {waits} | {} | `{}` |",
            l.pid,
            l.state,
            blockers.join(", "),
            code_cell(&l.query, 100)
        );
    }
    put!(w);
    if hang.invisible_to_postgres {
        put!(
            w,
            "↻ marks the cycle. It passes through a copy's client: a session idle because its copy waits on the \
             copy's other session. PostgreSQL's deadlock detector follows only waits inside the server, so it never \
             breaks this cycle; in production the replicas hang until something kills them.\n"
        );
    }
}

fn end_state(w: &mut String, race: &RaceReport) {
    let v = &race.versions;
    let rows = |list: &[String]| match list.is_empty() {
        true => "none".to_string(),
        false => list.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", "),
    };
    match v.expected == v.found {
        true => put!(w, "Version rows after the race: {}, as after the sequential rehearsal.\n", rows(&v.found)),
        false => put!(
            w,
            "Version rows after the race: {}; after the sequential rehearsal: {}.\n",
            rows(&v.found),
            rows(&v.expected)
        ),
    }
    match race.schema_differences.is_empty() {
        true => put!(w, "The schema (tables, columns, indexes, constraints) is the sequential rehearsal's.\n"),
        false => {
            put!(w, "The schema differs from the sequential rehearsal's:\n");
            for d in &race.schema_differences {
                put!(w, "- {}", escape(d));
            }
            put!(w);
        }
    }
}

/// The end of each failed copy's output, folded away.
fn outputs(w: &mut String, race: &RaceReport) {
    for c in race.copies.iter().filter(|c| c.failure.is_some() && !c.output.is_empty()) {
        put!(
            w,
            "<details><summary>Output of copy {} (its end)</summary>\n\n```\n{}\n```\n</details>\n",
            c.copy,
            c.output.replace("```", "'''")
        );
    }
}
