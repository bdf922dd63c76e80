//! Command-line arguments and the one `main` behind the binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod calibrate;
mod comment;
mod doctor;
mod production;
mod queries;
mod stats;
mod watch;

use crate::error::{exit, Error};
use crate::pipeline::events::{EventSink, Silent};
use crate::pipeline::{Progress, Redacting, Supervisor};
use crate::plan::{Overrides, Plan};
use crate::report::ReportFormat;
pub use calibrate::CalibrateArgs;
pub use comment::CommentArgs;
pub use queries::QueriesArgs;
pub use stats::StatsArgs;
pub use watch::WatchArgs;

#[derive(Debug, Parser)]
#[command(
    name = "rehearse",
    version,
    about = "Rehearse PostgreSQL schema migrations on a throwaway copy of production",
    long_about = "Rehearse PostgreSQL schema migrations on a throwaway copy of production.\n\n\
        rehearse restores a prod-shaped pg_dump into a throwaway Postgres, applies each pending \
        migration one at a time, times it, measures the WAL it writes, and writes a report for the \
        production checklist. The throwaway server is always removed afterwards.",
    after_help = "Exit codes: 0 all applied within budget · 1 a budget was breached · 2 a migration failed · \
        3 bad input (scenario, dump, arguments) · 4 environment problem (no Postgres binaries, cannot start) · \
        130 interrupted.\n\nExample:\n  rehearse run scenarios/demo.yaml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restore the scenario's dump, rehearse its pending migrations, and write the report.
    #[command(after_help = "Examples:\n  \
        rehearse run scenarios/demo.yaml\n  \
        rehearse run scenarios/nightly.yaml --dump /backups/prod-2026-11-23.dump --out reports/nightly\n  \
        rehearse run scenarios/demo.yaml --format json --keep\n  \
        rehearse run scenarios/nightly.yaml --baseline reports/previous.json --format table,markdown,json,junit")]
    Run(RunArgs),
    /// Rehearse the scenario, then build the whole migration history from empty in a second database on the
    /// same server and compare its schema with production plus the release: out-of-band changes, edited
    /// applied migrations and careless stamps show as findings (`drift:` in a scenario does the same in `run`).
    #[command(
        long_about = "Rehearse the scenario (the same keys as `run`; no budgets are judged), then build the whole \
            migration history from empty -- Alembic base to target, every SQL file, or migrations.build for a \
            command tool -- in a second database on the same server, as the role production's migrations run as, \
            and compare the two schemas by catalog: tables, columns, constraints, indexes, sequences, views, \
            functions, triggers, enums, domains, extensions, ownership and privileges.\n\n\
            Each difference is a finding: present only in production (an out-of-band change), only in the history \
            (a revision stamped but never run, or an out-of-band drop), or defined differently (an applied \
            migration edited after it ran, or a manual fix), with the revision that made the object in the \
            history when it can be told. Exit 0 whatever the findings (use budgets.fail_on_drift in `run` to \
            fail a pipeline on them).",
        after_help = "Examples:\n  rehearse drift scenarios/drift-demo.yaml\n  \
            rehearse drift scenarios/nightly.yaml --dump /backups/prod.dump --format markdown,json"
    )]
    Drift(RunArgs),
    /// List or prune the snapshot cache of restored dumps.
    #[command(after_help = "Examples:\n  rehearse cache list\n  rehearse cache prune --older-than 7d --max-size 50GB")]
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },

    /// Remove what a crashed run (kill -9) left behind: throwaway cluster dirs in the temp dir, containers
    /// labelled `rehearse`, and with --url the throwaway databases on that server. Leftovers of runs that
    /// are still going are listed and left alone.
    #[command(after_help = "Examples:\n  rehearse cleanup\n  rehearse cleanup --url \"$STAGING_URL\"")]
    Cleanup(CleanupArgs),

    /// Show what this machine can run: local PostgreSQL binaries, Docker and its images, client tools,
    /// Python and Alembic; each missing piece with the command that fixes it.
    Doctor,

    /// Read production's size statistics (rows, pages and bytes of every table and index) and write them
    /// as JSON for an estimate. Catalog reads only: safe on a primary or a hot standby.
    #[command(
        long_about = "Read production's size statistics and write them as JSON (rehearse.stats/v1), \
            for an estimate that scales a rehearsal on a smaller copy up to production.\n\n\
            What it reads: the server version; the settings that drive DDL speed (maintenance_work_mem, \
            max_parallel_maintenance_workers, work_mem, shared_buffers); and for every table, partitioned \
            table, index, materialized view and TOAST table of the database: its kind, the table it belongs \
            to, rows (pg_class.reltuples), pages (relpages), bytes (pg_relation_size) and total_bytes \
            (pg_total_relation_size for tables). Sizes only: no row of any table is read.\n\n\
            Safe on a primary or a hot standby: one connection, one READ ONLY transaction with a \
            statement_timeout (--timeout), reads of pg_class, pg_index and pg_namespace and of file sizes. \
            No table is scanned and nothing of its own is written (on a primary, PostgreSQL may prune dead \
            catalog rows it reads past, as for any catalog query; a standby writes nothing at all). \
            pg_relation_size takes ACCESS SHARE on each relation for the instant it reads the size, so it \
            waits behind a relation locked ACCESS EXCLUSIVE (a running ALTER TABLE or VACUUM FULL) until \
            --timeout.",
        after_help = "Privileges: a role that can log in and connect to the database. Every role may read \
            pg_class and use pg_relation_size, on tables it has no privilege on too, so no grant on any table \
            is needed. For example:\n  \
            CREATE ROLE rehearse_stats LOGIN PASSWORD '...';\n  \
            GRANT CONNECT ON DATABASE app TO rehearse_stats;  -- when CONNECT was revoked from PUBLIC\n  \
            GRANT pg_read_all_stats TO rehearse_stats;         -- optional: monitoring's usual role\n\n\
            Exit codes: 0 written · 3 bad arguments (e.g. a URL that does not parse) · 4 cannot connect, \
            not allowed, timed out, or cannot write FILE.\n\n\
            Examples:\n  \
            rehearse stats --url postgres://rehearse_stats@db-replica.internal:5432/app --out prod-stats.json\n  \
            PGPASSWORD=... rehearse stats --url postgres://rehearse_stats@db/app --timeout 5m > stats.json"
    )]
    Stats(StatsArgs),

    /// Read the statements the app runs in production (pg_stat_statements' normalized text, calls, mean
    /// time) and write them as JSON for `compat.queries`. Read-only: safe on a primary or a hot standby.
    #[command(
        long_about = "Read the statements the app version running in production issues, from the database's \
            pg_stat_statements, and write them as JSON (rehearse.queries/v1) for the scenario's \
            compat.queries: each migration is then checked against them.\n\n\
            What it reads: the server version, and for the connected database only, the --top statements \
            run most often (top-level ones: not those inside functions), each with its normalized text \
            (constants become $1, $2, ...), its calls and its mean execution time. Utility statements (SET, \
            BEGIN, DDL, ...) are left out: they are not queries, and before PostgreSQL 16 their text keeps its \
            constants. No row of any table is read, and no constant the app sent.\n\n\
            Safe on a primary or a hot standby: one connection, one READ ONLY transaction with a \
            statement_timeout (--timeout), reads of pg_extension and of the pg_stat_statements view. It \
            needs pg_stat_statements in shared_preload_libraries and created in the database; without it, \
            it exits 4 and says what to do. pg_stat_statements counts each server's own statements: a hot \
            standby's are the reads run on it, so read the primary, and a standby the app also queries.",
        after_help = "Privileges: a role that can log in and connect to the database. pg_stat_statements shows \
            the text of other roles' statements only to superusers and members of pg_read_all_stats, so \
            grant that to see the app's statements:\n  \
            CREATE ROLE rehearse_stats LOGIN PASSWORD '...';\n  \
            GRANT pg_read_all_stats TO rehearse_stats;\n\n\
            Exit codes: 0 written · 3 bad arguments (e.g. a URL that does not parse) · 4 cannot connect, \
            not allowed, pg_stat_statements missing or empty, timed out, or cannot write FILE.\n\n\
            Examples:\n  \
            rehearse queries --url postgres://rehearse_stats@db-replica.internal:5432/app --out app-queries.json\n  \
            PGPASSWORD=... rehearse queries --url postgres://rehearse_stats@db/app --top 2000 > app-queries.json"
    )]
    Queries(QueriesArgs),

    /// Measure how much faster another server (a production replica) computes than this machine, for
    /// `estimate.speed`. Read-only queries of generated rows: nothing is read from tables or written.
    #[command(
        long_about = "Measure how much faster another server (a production replica) computes than this \
            machine, and print the ratio to put in the scenario's estimate.speed.\n\n\
            One round sorts 300,000 generated strings and hash-aggregates a million generated integers, on \
            one core (no parallel workers), with work_mem large enough to stay in memory and JIT off; the \
            median of 3 rounds counts. It runs on a throwaway local server started from this machine's \
            PostgreSQL binaries (as a local rehearsal runs) and, with --url, on the server named, inside a \
            READ ONLY transaction with statement_timeout = --timeout: no table is read, nothing is written, \
            safe on a primary or a hot standby. Disk speed is not measured, so a migration bound by I/O \
            on production may scale by more or less than this ratio.",
        after_help = "Exit codes: 0 measured · 3 bad arguments (e.g. a URL that does not parse) · 4 no \
            PostgreSQL binaries, cannot connect, or a round ran past --timeout · 130 interrupted.\n\n\
            Examples:\n  \
            rehearse calibrate                     # this machine only\n  \
            rehearse calibrate --url postgres://rehearse_stats@db-replica.internal:5432/app"
    )]
    Calibrate(CalibrateArgs),

    /// Follow a release while it runs in production, against its rehearsal's report: which migration runs,
    /// its time against the rehearsed and estimated one, who waits behind it, the standbys' lag, and the
    /// budgets it crosses, with the abort plan. Read-only.
    #[command(
        long_about = "Follow a release while it runs in production, against what its rehearsal measured \
            (--report: the rehearsal's report.json).\n\n\
            Each reading (--interval) tells which migration runs (from the history table the report names, \
            and from pg_stat_activity: a session running one of the migration's rehearsed statements), how \
            long it has run against its rehearsed time and production-scale estimate, what \
            pg_stat_progress_* shows it doing, which sessions wait behind it (pg_blocking_pids), and how far \
            each standby lags (pg_stat_replication, and each --standby-url's replay position). A threshold \
            crossed (the scenario's budgets, as the rehearsal judged them) prints one BREACH line with the \
            abort plan; watch never cancels anything itself.\n\n\
            Safe on production: one connection per server, default_transaction_read_only, \
            application_name 'rehearse watch', a statement_timeout and a lock_timeout on every read; it \
            writes no WAL. See docs/watch.md.",
        after_help = "Exit codes: 0 every migration of the report is applied (or already was) · 1 a threshold \
            was crossed under --on-breach exit, or --timeout came first · 3 bad arguments or report · 4 cannot \
            connect or read production · 130 interrupted.\n\n\
            Examples:\n  \
            rehearse watch --url postgres://watch@db.internal/app --report reports/release/report.json\n  \
            rehearse watch --url $PROD --report report.json --standby-url postgres://watch@replica/app \\\n      \
            --on-breach exit --events watch.jsonl --out watch/"
    )]
    Watch(WatchArgs),

    /// Post the report on the pull request (GitHub) or merge request (GitLab) under review: one comment per
    /// scenario, edited in place on every run.
    #[command(
        long_about = "Post the report on the pull request (GitHub) or merge request (GitLab) under review: the \
            verdict, what needs a reviewer first (budget breaches, regressions against the baseline, the running \
            app's queries it breaks, hazards), a table of the migrations with their production-scale estimate, and \
            each migration's details folded.\n\n\
            One comment per scenario: a hidden marker finds it again on the next run, which edits it in place. A \
            body over the platform's limit is cut at a section boundary, with a note. Under GitHub Actions and \
            GitLab CI everything is read from the job's variables; the flags override each.",
        after_help = "Exit codes: 0 posted (or unchanged with --changed-since) · 3 bad input (no report, not on a \
            pull request, no token) · 4 the API did not answer, refused the token (401), may not write (403), or \
            has no such pull request (404).\n\n\
            Examples:\n  \
            rehearse comment reports/nightly --artifact-url \"$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID\"\n  \
            rehearse comment reports/nightly/report.json --changed-since previous/report.json --pr 123\n  \
            rehearse comment reports/demo --print"
    )]
    Comment(CommentArgs),
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Also drop throwaway databases (`rehearse_*`) left on this server by crashed url-backend runs from this machine.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Show each cached restore: key, dump, server version, size, age.
    List,
    /// Remove entries older than a duration and/or beyond a total size (oldest first), and half-written ones;
    /// a docker entry's snapshot image goes with it.
    Prune {
        /// Remove entries older than this (humantime: 12h, 7d).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Keep the newest entries up to this total (512MB, 50GB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
}

fn parse_size(text: &str) -> Result<u64, String> {
    crate::plan::scenario::ByteSize::parse(text).map(|b| b.0)
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (YAML; every key is in docs/scenario.md), e.g. scenarios/demo.yaml.
    #[arg(value_name = "SCENARIO.yaml")]
    pub scenario: PathBuf,

    /// Restore this dump instead of the scenario's `dump:` (custom, directory, tar, plain or gzip'd plain SQL; detected from content).
    #[arg(long, value_name = "PATH")]
    pub dump: Option<PathBuf>,

    /// Write report files into DIR instead of the scenario's `report.dir` (default: reports/<scenario name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Report formats, comma-separated: table (terminal), markdown (report.md), json (report.json),
    /// junit (junit.xml). Default: the scenario's `report.formats`, else table, markdown and json.
    /// Example: --format table,json,junit
    #[arg(long, value_name = "FORMATS", value_delimiter = ',')]
    pub format: Option<Vec<ReportFormat>>,

    /// Compare with this earlier report.json (e.g. last night's) and flag regressions; wins over `report.baseline`.
    #[arg(long, value_name = "FILE.json")]
    pub baseline: Option<PathBuf>,

    /// Leave the throwaway server running at the end and print how to connect (the password stays in a private pgpass file).
    #[arg(long)]
    pub keep: bool,

    /// Directory of the PostgreSQL server binaries (initdb, pg_ctl, pg_restore, psql), e.g. /usr/lib/postgresql/15/bin.
    /// Default: pg_config --bindir, then PATH, then the newest /usr/lib/postgresql/*/bin.
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,

    /// Restore the dump even when the snapshot cache holds it (the cache is
    /// keyed by the dump's sha256 and the server version or docker image; see `rehearse cache`).
    #[arg(long)]
    pub no_cache: bool,

    /// Time the migrations without watching them (no lock sampling, probes or
    /// statement statistics): for measuring what observation costs.
    #[arg(long)]
    pub no_observe: bool,

    /// Internal, for measuring only (bench/tracing.sh): run Alembic's revisions
    /// without tracing their statements, so no per-statement locks or WAL.
    #[arg(long, hide = true)]
    pub no_trace: bool,

    /// Docker image for the docker backend, instead of postgres.image (default postgres:<postgres.version>),
    /// e.g. postgres:16 or registry.example.com/postgres:16.4. Any image honouring the official image's contract.
    /// Selects the docker backend whatever the scenario's `postgres.backend`.
    #[arg(long, value_name = "IMAGE", conflicts_with = "url")]
    pub image: Option<String>,

    /// Rehearse in a fresh database on this existing server (url backend), instead of postgres.url,
    /// e.g. postgres://me@staging:5432/postgres. The database is dropped afterwards; nothing else is written.
    /// Selects the url backend whatever the scenario's `postgres.backend`.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// No progress output on stderr (the report is still printed and written).
    #[arg(long, short)]
    pub quiet: bool,
}

/// A `--timeout`-style argument: a humantime duration inside `range`, else
/// "give a duration {hint}".
fn duration_within(
    text: &str,
    range: std::ops::RangeInclusive<std::time::Duration>,
    hint: &str,
) -> Result<std::time::Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    match range.contains(&duration) {
        true => Ok(duration),
        false => Err(format!("give a duration {hint}")),
    }
}

/// Parses arguments, runs, prints, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on usage errors; 2 means "a migration failed" here.
            return if e.use_stderr() { exit::BAD_INPUT } else { exit::OK };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::ENVIRONMENT;
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run_command(args, false).await,
            Command::Drift(args) => run_command(args, true).await,
            Command::Cache { action } => cache_command(action).await,
            Command::Cleanup(args) => cleanup_command(args).await,
            Command::Stats(args) => stats::command(args).await,
            Command::Queries(args) => queries::command(args).await,
            Command::Watch(args) => watch::command(args).await,
            Command::Comment(args) => comment::command(args),
            Command::Calibrate(args) => match Supervisor::install() {
                Ok(sup) => calibrate::command(args, sup.token()).await,
                Err(e) => {
                    eprintln!("{}", e.render());
                    e.exit_code()
                }
            },
            Command::Doctor => {
                let diagnosis = doctor::diagnose(&tokio_util::sync::CancellationToken::new()).await;
                print!("{}", diagnosis.render());
                if diagnosis.auto_backend.is_some() {
                    exit::OK
                } else {
                    exit::ENVIRONMENT
                }
            }
        }
    });
    // What is still running was left unfinished on purpose (a file being
    // read for a check that a signal cut short): dropping the runtime would
    // wait for it to end, so the exit would wait too.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

/// `run`, or `drift` (`drift`: the drift check on, no budgets).
async fn run_command(args: RunArgs, drift: bool) -> i32 {
    let sup = match Supervisor::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", e.render());
            return e.exit_code();
        }
    };
    let overrides = Overrides {
        dump: args.dump,
        out: args.out,
        formats: args.format,
        pg_bin: args.pg_bin,
        no_cache: args.no_cache,
        no_observe: args.no_observe,
        no_trace: args.no_trace,
        baseline: args.baseline,
        image: args.image,
        url: args.url,
        keep: args.keep,
        drift,
    };
    let plan = match Plan::resolve(&args.scenario, &overrides, sup.token()).await {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("{}", e.render());
            return e.exit_code();
        }
    };
    let redact = plan.report.redact;
    let mut events: Box<dyn EventSink> = if args.quiet { Box::new(Silent) } else { Box::new(Progress::for_stderr()) };
    if redact {
        events = Box::new(Redacting(events));
    }
    let outcome = crate::run::run(plan, events.as_ref(), &sup).await;
    drop(events);
    if let Some(table) = &outcome.table {
        print!("{table}");
    }
    for file in &outcome.files {
        eprintln!("wrote {}", file.display());
    }
    if let Some(kept) = &outcome.kept {
        eprintln!("{kept}");
    }
    // An interrupted run has a (partial) report, whose outcome line says so
    // and where to look; other errors are printed as they are.
    match outcome.error.as_ref().filter(|e| !matches!(e, Error::Interrupted)) {
        Some(e) if redact => eprintln!("{}", crate::sys::redact::values(&e.render())),
        Some(e) => eprintln!("{}", e.render()),
        None => {
            if let Some(line) = crate::report::outcome_line(&outcome.report) {
                eprintln!("{line}");
            }
        }
    }
    outcome.exit_code
}

async fn cache_command(action: CacheAction) -> i32 {
    use crate::report::format_bytes;
    let cache = crate::backend::cache::SnapshotCache::locate();
    let now = crate::backend::cache::now_secs();
    let describe = |e: &crate::backend::cache::Entry| {
        let age = std::time::Duration::from_secs(now.saturating_sub(e.manifest.created));
        let server = match &e.manifest.image {
            // "docker image NAME ID" (the key's server identity).
            Some(_) => e.manifest.server_version.clone(),
            None => format!("PostgreSQL {}", e.manifest.server_version),
        };
        format!(
            "{}  {:>9}  {server}  {} old  {}",
            e.manifest.key,
            format_bytes(e.manifest.bytes),
            humantime::format_duration(std::time::Duration::from_secs(age.as_secs() / 60 * 60)),
            e.manifest.dump_path
        )
    };
    match action {
        CacheAction::List => {
            let entries = cache.list();
            println!("snapshot cache: {} ({} entries)", cache.root().display(), entries.len());
            for e in &entries {
                println!("{}", describe(e));
            }
        }
        CacheAction::Prune { older_than, max_size } => {
            if older_than.is_none() && max_size.is_none() {
                eprintln!("error: say what to prune: --older-than DURATION and/or --max-size SIZE");
                return exit::BAD_INPUT;
            }
            let removed = cache.prune(older_than, max_size);
            let mut failed = false;
            for e in &removed {
                println!("removed {}", describe(e));
                if let Some(image) = &e.manifest.image {
                    if let Err(err) = crate::backend::docker::remove_snapshot_image(image).await {
                        eprintln!("{}", err.render());
                        failed = true;
                    }
                }
            }
            println!("{} entries removed from {}", removed.len(), cache.root().display());
            if failed {
                return exit::ENVIRONMENT;
            }
        }
    }
    exit::OK
}

async fn cleanup_command(args: CleanupArgs) -> i32 {
    let sup = match Supervisor::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", e.render());
            return e.exit_code();
        }
    };
    match crate::backend::leftovers::cleanup(&std::env::temp_dir(), args.url.as_deref(), sup.token()).await {
        Ok(report) => {
            print!("{}", report.render());
            if report.failed() {
                exit::ENVIRONMENT
            } else {
                exit::OK
            }
        }
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    }
}
