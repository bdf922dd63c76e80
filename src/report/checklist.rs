//! The production checklist (DESIGN.md): each item marked done with the
//! run's evidence, or left open with what a human must do. Items are data in
//! the report; the Markdown writer renders them for the release ticket. One
//! function per item, in the checklist's order.

use std::time::Duration;

use super::{
    count, format_bytes, format_ms, summary, Checklist, ChecklistId, ChecklistItem, MigrationReport, MigrationStatus,
    RaceVerdict, Report,
};

/// Default `report.ops_threshold`: a blocking lock this long surfaces as
/// request timeouts (30s is a common one), and a release this long is worth
/// a heads-up to whoever watches production.
pub const DEFAULT_OPS_THRESHOLD: Duration = Duration::from_secs(30);
/// Default `report.deploy_window`: a migration longer than a minute does not
/// belong on the deploy's critical path (start-up probes, rollout deadlines).
pub const DEFAULT_DEPLOY_WINDOW: Duration = Duration::from_secs(60);
/// Default `report.replica_apply_rate`: a conservative single-process WAL
/// replay rate for a replica on ordinary hardware.
pub const DEFAULT_REPLICA_APPLY_RATE: u64 = 50 << 20;

/// The thresholds the checklist judges by (`report.*` in the scenario).
#[derive(Debug, Clone)]
pub struct ChecklistSettings {
    pub ops_threshold: Duration,
    pub deploy_window: Duration,
    /// Bytes per second.
    pub replica_apply_rate: u64,
}

impl Default for ChecklistSettings {
    fn default() -> Self {
        ChecklistSettings {
            ops_threshold: DEFAULT_OPS_THRESHOLD,
            deploy_window: DEFAULT_DEPLOY_WINDOW,
            replica_apply_rate: DEFAULT_REPLICA_APPLY_RATE,
        }
    }
}

/// The replica lag a migration implies: the time to replay its WAL at
/// `rate`, and how far that replay ends behind the migration itself
/// (replay − duration, floored at 0); with WAL and time at production
/// scale when the run has an estimate (its mid). An estimate: it assumes
/// the replica replays as WAL arrives, at that rate, with no other write load.
pub fn replica_lag(m: &MigrationReport, rate: u64) -> (u64, u64) {
    lag_of(wal(m), duration(m), rate)
}

/// (replay time, lag) of `wal` bytes written over `duration_ms`, replayed at `rate` bytes/s.
fn lag_of(wal: u64, duration_ms: u64, rate: u64) -> (u64, u64) {
    let replay_ms = (wal as f64 / rate.max(1) as f64 * 1000.0).round() as u64;
    (replay_ms, replay_ms.saturating_sub(duration_ms))
}

/// A migration's figures the checklist judges by: at production scale when
/// the run has an estimate (its mid), else as measured here.
fn duration(m: &MigrationReport) -> u64 {
    m.estimate.as_ref().map_or(m.duration_ms, |e| e.duration_ms.mid)
}

fn longest_block(m: &MigrationReport) -> u64 {
    m.estimate.as_ref().map_or(m.longest_block(), |e| e.longest_read_block_ms.mid.max(e.longest_write_block_ms.mid))
}

fn wal(m: &MigrationReport) -> u64 {
    m.estimate.as_ref().map_or(m.wal.bytes, |e| e.wal_bytes.mid)
}

struct Item(ChecklistItem);

impl Item {
    fn new(id: ChecklistId, title: &str) -> Item {
        Item(ChecklistItem { id, title: title.into(), done: false, evidence: Vec::new(), todo: None })
    }
    fn evidence(mut self, line: impl Into<String>) -> Item {
        self.0.evidence.push(line.into());
        self
    }
    /// Done when `todo` is None; open with it otherwise.
    fn verdict(mut self, todo: Option<String>) -> ChecklistItem {
        self.0.done = todo.is_none();
        self.0.todo = todo;
        self.0
    }
}

/// What every item looks at: the run's figures, computed once.
struct Facts<'a> {
    r: &'a Report,
    s: &'a ChecklistSettings,
    ran: Vec<&'a MigrationReport>,
    restored: bool,
    /// "`x` (failed) did not complete", when one did not.
    unfinished: Option<String>,
    longest: Option<&'a MigrationReport>,
    /// The migration that blocked the app longest, if any did.
    blocker: Option<&'a MigrationReport>,
    /// The migration with the worst replica lag: (it, replay ms, lag ms).
    worst_lag: Option<(&'a MigrationReport, u64, u64)>,
    /// "drop_column public.t.c (`0002`, line 1)" for each destructive change.
    destructive: Vec<String>,
    environment: String,
}

impl<'a> Facts<'a> {
    fn new(r: &'a Report, s: &'a ChecklistSettings) -> Facts<'a> {
        let ms = &r.migrations;
        let ran: Vec<&MigrationReport> = ms.iter().filter(|m| m.ran()).collect();
        let incomplete: Vec<String> = ms
            .iter()
            .filter(|m| m.status != MigrationStatus::Applied)
            .map(|m| format!("`{}` ({})", m.id, m.status.as_str()))
            .collect();
        let worst_lag = ran
            .iter()
            .map(|m| {
                let (replay, lag) = replica_lag(m, s.replica_apply_rate);
                (*m, replay, lag)
            })
            .max_by_key(|(_, replay, lag)| (*lag, *replay));
        Facts {
            r,
            s,
            // A clone's data was in place once it was made: nothing to restore.
            restored: r.restore.restored_at.is_some() || r.dump.clone.is_some(),
            unfinished: (!incomplete.is_empty()).then(|| format!("{} did not complete", incomplete.join(", "))),
            longest: ran.iter().copied().max_by_key(|m| m.duration_ms),
            blocker: ran.iter().copied().max_by_key(|m| longest_block(m)).filter(|m| longest_block(m) > 0),
            worst_lag,
            destructive: destructive_changes(ms),
            environment: environment(r),
            ran,
        }
    }

    fn ops_ms(&self) -> u64 {
        self.s.ops_threshold.as_millis() as u64
    }

    /// The release's time the checklist judges: at production scale when estimated.
    fn total_ms(&self) -> u64 {
        self.r.totals.estimate.as_ref().map_or(self.r.totals.duration_ms, |e| e.duration_ms.mid)
    }

    /// The migration that lags replicas most, by how much, and how that is
    /// known: measured on the standby when the run had one, else estimated.
    fn replica_lag(&self) -> Option<(&'a MigrationReport, u64, &'static str)> {
        if self.r.standby.is_some() {
            let measured = self.ran.iter().filter_map(|m| m.standby.as_ref().map(|s| (*m, s.max_lag_ms)));
            return measured.max_by_key(|(_, lag)| *lag).map(|(m, lag)| (m, lag, " (measured on the standby)"));
        }
        self.worst_lag.map(|(m, _, lag)| (m, lag, ""))
    }

    /// " at production scale (estimate)" when the figures are estimates.
    fn at_scale(&self) -> &'static str {
        if self.r.estimate.is_some() {
            " at production scale (estimate)"
        } else {
            ""
        }
    }

    /// The usual verdict of an item with nothing of its own to say: open
    /// when the run did not restore or did not finish.
    fn unless_incomplete(&self, unfinished: impl FnOnce(&str) -> String) -> Option<String> {
        match &self.unfinished {
            Some(u) => Some(unfinished(u)),
            None if !self.restored => Some("Nothing was measured: fix the restore and re-run.".into()),
            None => None,
        }
    }

    fn destructive_line(&self) -> String {
        match self.destructive.is_empty() {
            true => "No dropped or renamed tables, views, schemas or columns in the executed statements.".into(),
            false => format!("Destructive changes: {}.", self.destructive.join("; ")),
        }
    }
}

fn destructive_changes(ms: &[MigrationReport]) -> Vec<String> {
    ms.iter()
        .flat_map(|m| {
            m.destructive_changes.iter().map(move |c| {
                let to = c.new_name.as_ref().map(|n| format!(" → {n}")).unwrap_or_default();
                let line = c.line.map(|l| format!(", line {l}")).unwrap_or_default();
                format!("{} {}{to} (`{}`{line})", c.kind, c.object, m.id)
            })
        })
        .collect()
}

fn environment(r: &Report) -> String {
    format!(
        "PostgreSQL {} ({} backend), {} CPU(s), {} RAM",
        r.postgres.version.as_deref().unwrap_or("?"),
        r.postgres.backend,
        r.machine.cpus,
        r.machine.memory_bytes.map(format_bytes).unwrap_or_else(|| "?".into())
    )
}

pub fn fill(r: &Report, s: &ChecklistSettings) -> Checklist {
    let f = Facts::new(r, s);
    Checklist {
        ops_threshold_ms: f.ops_ms(),
        deploy_window_ms: s.deploy_window.as_millis() as u64,
        replica_apply_rate_bytes_per_second: s.replica_apply_rate,
        items: vec![
            prod_shaped_data(&f),
            runtime_estimate(&f),
            backup(&f),
            replica_lag_plan(&f),
            ops_comm(&f),
            standalone_job(&f),
            rollback(&f),
            app_compatibility(&f),
            monitoring(&f),
        ],
    }
}

/// Where the rehearsed data came from: a dump restored, or a clone made.
fn data_evidence(f: &Facts) -> String {
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

fn prod_shaped_data(f: &Facts) -> ChecklistItem {
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

fn runtime_estimate(f: &Facts) -> ChecklistItem {
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
fn production_scale(f: &Facts) -> String {
    let r = f.r;
    let (Some(info), Some(total)) = (&r.estimate, &r.totals.estimate) else {
        return "Production hardware, data volume, cache state and concurrent load differ: read these as an estimate \
                and an order of magnitude, not a promise (an `estimate:` with production's statistics scales them)."
            .into();
    };
    let longest = f.ran.iter().max_by_key(|m| duration(m)).and_then(|m| {
        m.estimate.as_ref().map(|e| format!(", longest `{}` {}", m.id, super::table::range_ms(e.duration_ms)))
    });
    format!(
        "At production scale: {} in total{} (estimated from production's statistics `{}`, database `{}` read {}, \
         speed ×{}; per migration under \"At production scale\"). Cache state, concurrent load and disk speed still differ.",
        super::table::range_ms(total.duration_ms),
        longest.unwrap_or_default(),
        info.production,
        info.database,
        info.taken_at,
        info.speed
    )
}

fn backup(f: &Facts) -> ChecklistItem {
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

fn replica_lag_plan(f: &Facts) -> ChecklistItem {
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
fn standby_lag(f: &Facts) -> Option<(String, Option<String>)> {
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

fn ops_comm(f: &Facts) -> ChecklistItem {
    let (r, ops) = (f.r, f.ops_ms());
    let mut long = Vec::new();
    let total = f.total_ms();
    if total > ops {
        long.push(format!("the migrations take {}{} in total", format_ms(total), f.at_scale()));
    }
    if let Some(m) = f.blocker.filter(|m| longest_block(m) > ops) {
        long.push(format!("`{}` blocks the app for {}{}", m.id, format_ms(longest_block(m)), f.at_scale()));
    }
    if let Some((m, lag, how)) = f.replica_lag().filter(|(_, lag, _)| *lag > ops) {
        long.push(format!("`{}` lags replicas by about {}{how}", m.id, format_ms(lag)));
    }
    for m in r.migrations.iter().filter(|m| m.status == MigrationStatus::TimedOut) {
        long.push(format!("`{}` ran past its max_runtime and was cancelled", m.id));
    }
    let blocker = f
        .blocker
        .map(|m| {
            let what = super::summary::longest_block_of(m)
                .map(|(b, what)| format!(" ({} on {}, blocking {what})", b.mode, b.relation))
                .unwrap_or_default();
            format!("{}{what} in `{}`", format_ms(longest_block(m)), m.id)
        })
        .unwrap_or_else(|| "none on existing tables".into());
    let item = Item::new(ChecklistId::OpsComm, "Comm to ops if long").evidence(format!(
        "Total {}; longest blocking lock {blocker}{}; threshold {} (`report.ops_threshold`).",
        format_ms(f.total_ms()),
        f.at_scale(),
        format_ms(ops)
    ));
    item.verdict(match long.is_empty() {
        false => Some(format!(
            "Tell ops before the release: {}. Agree a low-traffic window and who watches it.",
            long.join("; ")
        )),
        true => f.unless_incomplete(|u| format!("{u}, so the figures are lower bounds: fix and re-run.")),
    })
}

fn standalone_job(f: &Facts) -> ChecklistItem {
    let window = f.s.deploy_window.as_millis() as u64;
    let over: Vec<String> =
        f.r.migrations
            .iter()
            .filter(|m| duration(m) > window || m.status == MigrationStatus::TimedOut)
            .map(|m| {
                let timed_out = if m.status == MigrationStatus::TimedOut { "+, timed out" } else { "" };
                format!("`{}` ({}{timed_out}{})", m.id, format_ms(duration(m)), f.at_scale())
            })
            .collect();
    let longest = f
        .ran
        .iter()
        .max_by_key(|m| duration(m))
        .map(|m| format!("`{}` {}{}", m.id, format_ms(duration(m)), f.at_scale()))
        .unwrap_or_else(|| "none".into());
    let mut item =
        Item::new(ChecklistId::StandaloneJob, "Runs as a standalone job, not multi-replica app start-up").evidence(
            format!("Deploy window {} (`report.deploy_window`); longest migration {longest}.", format_ms(window)),
        );
    // How it was launched: from the app's image as the pre-deploy Job, or here.
    if let Some(line) =
        summary::launch_line(f.r, true).filter(|_| f.r.launch.as_ref().is_some_and(|l| l.image.is_some()))
    {
        item = item.evidence(line);
    }
    let race = f.r.race.as_ref();
    if let Some(race) = race {
        item = item.evidence(format!("{}.", summary::capitalize(&summary::race_line(race, true))));
    }
    let unproven = race.filter(|r| r.verdict != RaceVerdict::Safe);
    let mut item = item.verdict(match (unproven, over.is_empty()) {
        (Some(race), _) if race.verdict == RaceVerdict::Unsafe => Some(format!(
            "Run the migrations once, from a single Job (a Kubernetes Job, a one-off release step) before the new \
             replicas start, not at each replica's start-up, where {} of them racing was unsafe.",
            race.replicas
        )),
        (Some(race), _) => Some(format!(
            "Racing {} replicas proved nothing this time (inconclusive): re-run it, or run the migrations once, \
             from a single Job (a Kubernetes Job, a one-off release step), before the new replicas start.",
            race.replicas
        )),
        (None, false) => Some(format!(
            "Run {} as a standalone job (a Kubernetes Job, a one-off CI step) off the deploy's critical path, never \
             at app start-up where every replica would race to run it.",
            over.join(", ")
        )),
        (None, true) => f.unless_incomplete(|u| format!("{u}, so their runtime is unknown: fix and re-run.")),
    });
    if item.done {
        item.evidence.push(match race {
            Some(race) => format!(
                "Every migration fits the deploy window, and the start-up pattern held for {} replicas racing: \
                 run them from a single job or release step all the same, where one failure stops the release.",
                race.replicas
            ),
            None => "Every migration fits the deploy window: run them once per release from a single job or release \
                     step, not at each replica's start-up."
                .into(),
        });
    }
    item
}

fn rollback(f: &Facts) -> ChecklistItem {
    let todo = if f.destructive.is_empty() {
        "Write down the forward fix for each migration: rolling forward is the plan, with the fix ready as the next migration."
    } else {
        "Write down the forward fix for each migration: rolling forward is the plan, and dropped data comes back \
         only from a backup, so check the backup holds it."
    };
    Item::new(ChecklistId::Rollback, "Rollback strategy (forward)")
        .evidence(f.destructive_line())
        .verdict(Some(todo.into()))
}

/// Done only when the running app's queries were checked after every
/// migration and none broke; without a corpus, a human confirms it.
fn app_compatibility(f: &Facts) -> ChecklistItem {
    let item = Item::new(ChecklistId::AppCompatibility, "Compatible with the running app version (expand-contract)")
        .evidence(f.destructive_line());
    let Some(info) = &f.r.compat else {
        let todo = if f.destructive.is_empty() {
            "Confirm the app version running during the deploy works with both the old and the new schema \
             (`compat.queries` checks its queries against each migration)."
        } else {
            "Confirm the app version running in production no longer reads or writes what these changes drop or \
             rename (contract only after the app stopped using it; `compat.queries` checks its queries)."
        };
        return item.verdict(Some(todo.into()));
    };
    let mut item = item.evidence(compat_checked(f, info));
    if !info.already_broken.is_empty() {
        let list: Vec<String> = info.already_broken.iter().map(|b| summary::broken_line(b, 80, true)).collect();
        item = item.evidence(format!(
            "Already failing before the first migration, so not caused by this release: {}.",
            list.join("; ")
        ));
    }
    let broken: Vec<String> = f
        .ran
        .iter()
        .filter_map(|m| m.compat.as_ref().map(|c| (m, c)))
        .flat_map(|(m, c)| {
            c.broken.iter().map(move |b| format!("`{}` breaks {}", m.id, summary::broken_line(b, 80, true)))
        })
        .collect();
    item.verdict(match broken.is_empty() {
        false => Some(format!(
            "Keep the running app working until it is replaced: make these changes expand-contract (add the new, \
             switch the app, then remove the old in a later release), or deploy an app version that works with \
             both schemas first. {}.",
            broken.join("; ")
        )),
        true => f.unless_incomplete(|u| {
            format!("{u}, so the queries were not checked against every migration: fix and re-run.")
        }),
    })
}

/// "Checked 12 queries of the running app (`queries.sql`; 1 utility statement ignored) ...".
fn compat_checked(f: &Facts, info: &super::CompatInfo) -> String {
    let ignored = summary::ignored_statements(info).map(|i| format!("; {i}")).unwrap_or_default();
    let after = f.ran.iter().filter(|m| m.compat.is_some()).count();
    let broken = summary::broken_by_release(f.r);
    let verdict = match broken {
        0 => "none broke".to_string(),
        n => format!("{} broke", summary::queries(n)),
    };
    format!(
        "Checked {} of the running app (`{}`{ignored}) before the first migration and after each of the {}: \
         prepared against the schema, INSERTs' omitted columns held against NOT NULL columns without a default; {verdict}.",
        summary::queries(info.checked),
        file_name(&info.queries),
        count(after, "applied migration", "applied migrations"),
    )
}

/// The file name of a path, as the evidence shows it.
fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.into())
}

fn monitoring(f: &Facts) -> ChecklistItem {
    let mut item = Item::new(ChecklistId::Monitoring, "Monitoring active");
    if !f.r.observation.hot_tables.is_empty() {
        item = item.evidence(format!("Probed here: reads and writes on {}.", f.r.observation.hot_tables.join(", ")));
    }
    item.verdict(Some(
        "Watch lock waits (`pg_stat_activity.wait_event`), replication lag, and the app's error rate and latency \
         while the migrations run, and know who cancels a migration that blocks (`pg_cancel_backend`)."
            .into(),
    ))
}
