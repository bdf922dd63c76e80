//! `rehearse comment`'s arguments; the work is `crate::comment`.

use std::path::PathBuf;

use clap::Args;

use crate::comment::{self, Given, Platform, Request};

#[derive(Debug, Args)]
pub struct CommentArgs {
    /// The report to post: a report.json, or the report directory holding it.
    #[arg(value_name = "REPORT")]
    pub report: PathBuf,

    /// Link the comment to the full report here (the job's uploaded artifact), e.g.
    /// "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID".
    #[arg(long, value_name = "URL")]
    pub artifact_url: Option<String>,

    /// Post only when the outcome (status, each migration's status, hazards and breaches) differs from this
    /// earlier report.json, or the report found regressions against its baseline: a nightly job's "tonight
    /// differs from last night".
    #[arg(long, value_name = "FILE.json")]
    pub changed_since: Option<PathBuf>,

    /// Print the comment's body to stdout and post nothing.
    #[arg(long)]
    pub print: bool,

    /// Where the review happens. Default: github under GitHub Actions, gitlab under GitLab CI.
    #[arg(long, value_enum)]
    pub platform: Option<Platform>,

    /// The REST API's root. Default: GITHUB_API_URL (else https://api.github.com), or CI_API_V4_URL.
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,

    /// GitHub: the repository, OWNER/NAME. Default: GITHUB_REPOSITORY.
    #[arg(long, value_name = "OWNER/NAME")]
    pub repo: Option<String>,

    /// GitHub: the pull request's number. Default: the one the workflow's event is for (GITHUB_EVENT_PATH).
    #[arg(long, value_name = "NUMBER")]
    pub pr: Option<u64>,

    /// GitLab: the project's id or path. Default: CI_PROJECT_ID.
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,

    /// GitLab: the merge request's iid. Default: CI_MERGE_REQUEST_IID.
    #[arg(long, value_name = "IID")]
    pub mr: Option<u64>,

    /// The variable holding the token (never the token itself, which would show in the process list).
    /// Default: GITHUB_TOKEN on GitHub, GITLAB_TOKEN on GitLab.
    #[arg(long, value_name = "NAME")]
    pub token_env: Option<String>,
}

/// Runs `rehearse comment` and returns the exit code.
pub fn command(args: CommentArgs) -> i32 {
    let request = Request {
        report: args.report,
        artifact_url: args.artifact_url,
        changed_since: args.changed_since,
        print: args.print,
        given: Given {
            platform: args.platform,
            api_url: args.api_url,
            repo: args.repo,
            pr: args.pr,
            project: args.project,
            mr: args.mr,
            token_env: args.token_env,
        },
    };
    comment::exit_code(comment::run(&request, |name| std::env::var(name).ok()))
}
