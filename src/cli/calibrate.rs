//! `rehearse calibrate`: the benchmark of `estimate::calibrate` on a
//! throwaway local server (this machine, as it rehearses) and, with
//! `--url`, on the server it names (a production replica), and the ratio
//! to put in `estimate.speed`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::backend::local::{find_binaries, LocalCluster};
use crate::error::{exit, Error, ErrorKind, Result};
use crate::estimate::calibrate;
use crate::report::format_ms;
use crate::sys::db::{self, ConnInfo};

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// The server to compare with (a production replica is best), e.g.
    /// postgres://me@replica:5432/postgres. Only read-only queries run there;
    /// nothing is written. Without it, only this machine is measured.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A shell command that prints the password (e.g. `aws rds generate-db-auth-token ...`), run before
    /// each connection; its output is never shown. For passwords that expire (cloud IAM tokens).
    #[arg(long, value_name = "COMMAND")]
    pub password_command: Option<String>,

    /// Directory of the PostgreSQL server binaries for the local throwaway server.
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,

    /// How long one round may run on either server before it is cancelled (its statement_timeout).
    /// Between 1ms and 1h.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "60s")]
    pub timeout: Duration,
}

fn parse_timeout(text: &str) -> std::result::Result<Duration, String> {
    // Whole milliseconds: statement_timeout = 0 (under 1ms) would mean no timeout at all.
    super::duration_within(text, Duration::from_millis(1)..=Duration::from_secs(3600), "between 1ms and 1h, e.g. 60s")
}

/// What the benchmark found: this machine's time and, with a URL, the other's and the ratio.
pub struct Calibration {
    pub here: Duration,
    pub there: Option<Duration>,
}

pub async fn command(args: CalibrateArgs, cancel: &CancellationToken) -> i32 {
    match calibrate(&args, cancel).await {
        Ok(found) => {
            print!("{}", found.render());
            exit::OK
        }
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    }
}

pub async fn calibrate(args: &CalibrateArgs, cancel: &CancellationToken) -> Result<Calibration> {
    // Parse the URL first: a typo is exit 3 before any server starts.
    let server = match &args.url {
        Some(url) => Some(crate::backend::url::with_password_command(
            crate::backend::url::parse(url)?,
            args.password_command.as_deref(),
            "--password-command",
        )),
        None => None,
    };
    let bin = find_binaries(args.pg_bin.as_deref(), cancel).await?;
    let cluster = LocalCluster::start(bin, cancel).await?;
    let conn = cluster.conn().clone();
    let here = until_cancelled(cancel, measure_on(&conn, "the local throwaway server", args.timeout)).await;
    cluster.stop().await?;
    let here = here?;
    let there = match &server {
        Some(s) => Some(until_cancelled(cancel, measure_on(s, "--url", args.timeout)).await?),
        None => None,
    };
    Ok(Calibration { here, there })
}

/// The benchmark on one server, `what` naming it in errors (never with its password).
async fn measure_on(server: &ConnInfo, what: &str, timeout: Duration) -> Result<Duration> {
    let client = db::connect(server, &server.dbname, "rehearse-calibrate")
        .await
        .map_err(|e| crate::sys::refusal::cannot_connect(what, server, e))?;
    calibrate::measure(&client, timeout).await.map_err(|e| {
        let kind = match e.code() {
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => ErrorKind::TimedOut,
            _ => ErrorKind::OtherEnvironment,
        };
        kind.because(
            format!(
                "the benchmark failed on {what} ({}) (a statement_timeout means it ran past --timeout {})",
                server.masked(&server.dbname),
                humantime::format_duration(timeout)
            ),
            e,
        )
    })
}

async fn until_cancelled<T>(
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        done = work => done,
        () = cancel.cancelled() => Err(Error::Interrupted),
    }
}

impl Calibration {
    /// What the terminal shows.
    pub fn render(&self) -> String {
        let mut out = format!(
            "this machine: {} a round (median of {}: a sort and a hash aggregate of generated rows, one core, in memory)\n",
            format_ms(self.here.as_millis() as u64),
            calibrate::ROUNDS
        );
        match self.there {
            Some(there) => {
                let speed = calibrate::speed(self.here, there);
                out.push_str(&format!("the other server: {} a round\n", format_ms(there.as_millis() as u64)));
                out.push_str(&format!(
                    "\nestimate.speed: {speed}   (the other server computes {speed}× as fast as this one)\n"
                ));
            }
            None => out.push_str("\nPass --url URL (a production replica) to compare; estimate.speed is this machine's time over that one's.\n"),
        }
        out.push_str(
            "Disk speed is not measured: a migration bound by I/O on production may scale by more or less than this.\n",
        );
        out
    }
}
