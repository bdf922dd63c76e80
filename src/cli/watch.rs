//! `rehearse watch`: the arguments, resolved into a [`WatchPlan`] before
//! anything connects, and the exit code of the watch.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::backend::url;
use crate::error::Result;
use crate::pipeline::Supervisor;
use crate::watch::{self, OnBreach, WatchPlan};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Production's primary, where the release runs, e.g. postgres://watch@db.internal:5432/app. Without a
    /// password in the URL, PGPASSWORD is used.
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// A shell command that prints the password, run before each connection; its output is never shown.
    #[arg(long, value_name = "COMMAND")]
    pub password_command: Option<String>,

    /// The report.json of the rehearsal of this release.
    #[arg(long, value_name = "FILE.json")]
    pub report: PathBuf,

    /// A hot standby to read the replay position of (repeat for each); the primary's pg_stat_replication is
    /// read in any case.
    #[arg(long, value_name = "URL")]
    pub standby_url: Vec<String>,

    /// How often production is read, between 200ms and 1h.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Stop watching after this long (exit 1), e.g. 2h. Default: until every migration is applied.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,

    /// The statement_timeout of every read, between 1s and 10m.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_statement_timeout)]
    pub statement_timeout: Duration,

    /// When a threshold is crossed: `warn` (print the breach and the abort plan, keep watching) or `exit`
    /// (print them and exit 1). watch never cancels anything itself.
    #[arg(long, value_name = "WHAT", value_enum, default_value = "warn")]
    pub on_breach: OnBreach,

    /// Write each event as one JSON object a line to FILE.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,

    /// Write the summary (watch.md, watch.json) into DIR at the end.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// No event lines on stderr (the events file and the summary are still written).
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    // A floor: a reading every few milliseconds would load production for nothing.
    super::duration_within(
        text,
        Duration::from_millis(200)..=Duration::from_secs(3600),
        "between 200ms and 1h, e.g. 1s",
    )
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    super::duration_within(text, Duration::from_secs(1)..=Duration::from_secs(7 * 24 * 3600), "between 1s and 7d")
}

fn parse_statement_timeout(text: &str) -> Result<Duration, String> {
    // statement_timeout = 0 would mean none at all.
    super::duration_within(text, Duration::from_secs(1)..=Duration::from_secs(600), "between 1s and 10m, e.g. 5s")
}

fn plan(args: WatchArgs) -> Result<WatchPlan> {
    let server =
        url::with_password_command(url::parse(&args.url)?, args.password_command.as_deref(), "--password-command");
    let standbys = args.standby_url.iter().map(|u| url::parse_as(u, "--standby-url")).collect::<Result<Vec<_>>>()?;
    Ok(WatchPlan {
        server,
        standbys,
        report: args.report,
        interval: args.interval,
        timeout: args.timeout,
        statement_timeout: args.statement_timeout,
        on_breach: args.on_breach,
        events: args.events,
        out: args.out,
        quiet: args.quiet,
    })
}

/// Runs `rehearse watch` and returns the exit code.
pub async fn command(args: WatchArgs) -> i32 {
    let outcome = async {
        let plan = plan(args)?;
        let sup = Supervisor::install()?;
        watch::watch(&plan, sup.token()).await
    };
    match outcome.await {
        Ok(ending) => ending.exit_code(),
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_has_a_floor() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("10ms").is_err());
        assert!(parse_statement_timeout("0s").is_err());
    }
}
