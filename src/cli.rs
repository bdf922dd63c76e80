//! Command-line arguments and the one `main` behind the binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::exit;
use crate::events::{EventSink, Silent};
use crate::plan::{Overrides, Plan};
use crate::progress::Progress;
use crate::scenario::ReportFormat;
use crate::signals::Supervisor;

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
        rehearse run scenarios/demo.yaml --format json --keep")]
    Run(RunArgs),

    /// Remove what a crashed run (kill -9) left behind: throwaway cluster dirs in the temp dir, containers
    /// labelled `rehearse`, and with --url the throwaway databases on that server. Leftovers of runs that
    /// are still going are listed and left alone.
    #[command(after_help = "Examples:\n  rehearse cleanup\n  rehearse cleanup --url \"$STAGING_URL\"")]
    Cleanup(CleanupArgs),

    /// Show what this machine can run: local PostgreSQL binaries, Docker and its images, client tools,
    /// Python and Alembic; each missing piece with the command that fixes it.
    Doctor,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Also drop throwaway databases (`rehearse_*`) left on this server by crashed url-backend runs from this machine.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (YAML; see README's scenario reference), e.g. scenarios/demo.yaml.
    #[arg(value_name = "SCENARIO.yaml")]
    pub scenario: PathBuf,

    /// Restore this dump instead of the scenario's `dump:` (custom, directory, tar, plain or gzip'd plain SQL; detected from content).
    #[arg(long, value_name = "PATH")]
    pub dump: Option<PathBuf>,

    /// Write report files into DIR instead of the scenario's `report.dir` (default: reports/<scenario name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Report formats, comma-separated: table (terminal), markdown (report.md), json (report.json).
    /// Default: the scenario's `report.formats`, else all three. Example: --format table,json
    #[arg(long, value_name = "FORMATS", value_delimiter = ',')]
    pub format: Option<Vec<ReportFormat>>,

    /// Leave the throwaway server running at the end and print how to connect (the password stays in a private pgpass file).
    #[arg(long)]
    pub keep: bool,

    /// Directory of the PostgreSQL server binaries (initdb, pg_ctl, pg_restore, psql), e.g. /usr/lib/postgresql/15/bin.
    /// Default: pg_config --bindir, then PATH, then the newest /usr/lib/postgresql/*/bin.
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,

    /// Docker image for the docker backend, instead of postgres.image (default postgres:<postgres.version>),
    /// e.g. postgres:16 or registry.example.com/postgres:16.4. Any image honouring the official image's contract.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Rehearse in a fresh database on this existing server (url backend), instead of postgres.url,
    /// e.g. postgres://me@staging:5432/postgres. The database is dropped afterwards; nothing else is written.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// No progress output on stderr (the report is still printed and written).
    #[arg(long, short)]
    pub quiet: bool,
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
    runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run_command(args).await,
            Command::Cleanup(args) => cleanup_command(args).await,
            Command::Doctor => {
                let diagnosis = crate::doctor::diagnose(&tokio_util::sync::CancellationToken::new()).await;
                print!("{}", diagnosis.render());
                if diagnosis.auto_backend.is_some() {
                    exit::OK
                } else {
                    exit::ENVIRONMENT
                }
            }
        }
    })
}

async fn run_command(args: RunArgs) -> i32 {
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
        image: args.image,
        url: args.url,
        keep: args.keep,
    };
    let plan = match Plan::resolve(&args.scenario, &overrides, sup.token()).await {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("{}", e.render());
            return e.exit_code();
        }
    };
    let events: Box<dyn EventSink> = if args.quiet { Box::new(Silent) } else { Box::new(Progress::for_stderr()) };
    let outcome = crate::run::run(&plan, events.as_ref(), &sup).await;
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
    if let Some(e) = &outcome.error {
        eprintln!("{}", e.render());
    }
    outcome.exit_code
}

async fn cleanup_command(args: CleanupArgs) -> i32 {
    let sup = match Supervisor::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", e.render());
            return e.exit_code();
        }
    };
    match crate::cleanup::cleanup(&std::env::temp_dir(), args.url.as_deref(), sup.token()).await {
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
