//! Which pull or merge request to comment on, and with which token: from
//! the flags, else from the variables GitHub Actions and GitLab CI set.
//! Resolved before any request, so a job that is not on a pull request
//! fails at once saying so.

use std::path::PathBuf;

use serde_json::Value;

use super::http::Token;
use crate::error::{ErrorKind, Result};
use crate::kinds::closed_set;

closed_set! {
    /// Where the review happens.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
    pub enum Platform {
        /// A GitHub pull request (github.com or GitHub Enterprise Server).
        Github = "github",
        /// A GitLab merge request (gitlab.com or self-managed).
        Gitlab = "gitlab",
    }
}

/// What the flags say; each None is read from the CI's variables.
#[derive(Debug, Default, Clone)]
pub struct Given {
    pub platform: Option<Platform>,
    pub api_url: Option<String>,
    pub repo: Option<String>,
    pub pr: Option<u64>,
    pub project: Option<String>,
    pub mr: Option<u64>,
    pub token_env: Option<String>,
}

/// A pull or merge request, its comments' API, and the token for it.
pub struct Target {
    pub platform: Platform,
    /// The API's root, without a trailing slash.
    pub api: String,
    /// `owner/repo` (GitHub) or the project's id or path (GitLab).
    pub project: String,
    /// The pull request's number or the merge request's iid.
    pub number: u64,
    pub token: Token,
}

impl Target {
    /// "pull request acme/shop#12", "merge request 42!7".
    pub fn shown(&self) -> String {
        match self.platform {
            Platform::Github => format!("pull request {}#{}", self.project, self.number),
            Platform::Gitlab => format!("merge request {}!{}", self.project, self.number),
        }
    }
}

/// The target `given` names, the rest read through `var` (the environment).
pub fn resolve(given: &Given, var: impl Fn(&str) -> Option<String>) -> Result<Target> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let platform = match given.platform {
        Some(p) => p,
        None if var("GITHUB_ACTIONS").is_some() || var("GITHUB_REPOSITORY").is_some() => Platform::Github,
        None if var("GITLAB_CI").is_some() || var("CI_API_V4_URL").is_some() => Platform::Gitlab,
        None => {
            return Err(ErrorKind::ArgumentsInvalid.error(
                "cannot tell where to comment: neither GitHub Actions' nor GitLab CI's variables are set; \
                 give --platform github (with --repo and --pr) or --platform gitlab (with --api-url, --project and --mr)",
            ))
        }
    };
    match platform {
        Platform::Github => github(given, &var),
        Platform::Gitlab => gitlab(given, &var),
    }
}

fn github(given: &Given, var: &dyn Fn(&str) -> Option<String>) -> Result<Target> {
    let api =
        given.api_url.clone().or_else(|| var("GITHUB_API_URL")).unwrap_or_else(|| "https://api.github.com".into());
    let project = given.repo.clone().or_else(|| var("GITHUB_REPOSITORY")).ok_or_else(|| {
        ErrorKind::ArgumentsInvalid.error("no repository: GITHUB_REPOSITORY is not set; give --repo OWNER/NAME")
    })?;
    let number = match given.pr {
        Some(n) => n,
        None => pull_request_of_event(var)?,
    };
    let variable = given.token_env.clone().unwrap_or_else(|| "GITHUB_TOKEN".into());
    let value = var(&variable).ok_or_else(|| {
        ErrorKind::ArgumentsInvalid.error(format!(
            "no token: {variable} is not set; in a workflow, add `env: {{ GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}} }}` \
             to the step (with `permissions: {{ pull-requests: write }}`), or name another variable with --token-env"
        ))
    })?;
    let token = Token { header: "Authorization", value, prefix: "Bearer ", variable };
    Ok(Target { platform: Platform::Github, api: api.trim_end_matches('/').into(), project, number, token })
}

/// The pull request the workflow runs for: `pull_request.number` of the
/// event file (`pull_request` and `pull_request_target` events), or
/// `issue.number` of an `issue_comment` on a pull request.
fn pull_request_of_event(var: &dyn Fn(&str) -> Option<String>) -> Result<u64> {
    let event = var("GITHUB_EVENT_NAME").unwrap_or_else(|| "unknown".into());
    let not_on_a_pr = || {
        ErrorKind::ArgumentsInvalid.error(format!(
            "this job is not on a pull request (GITHUB_EVENT_NAME={event}): run `rehearse comment` in a workflow \
             triggered by `pull_request`, or give --pr NUMBER (a nightly job: the release's pull request)"
        ))
    };
    let Some(path) = var("GITHUB_EVENT_PATH").map(PathBuf::from) else { return Err(not_on_a_pr()) };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ErrorKind::ArgumentsInvalid
            .because(format!("cannot read the event file {} (GITHUB_EVENT_PATH)", path.display()), e)
    })?;
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let number = json
        .pointer("/pull_request/number")
        .or_else(|| json.pointer("/issue/pull_request").and_then(|_| json.pointer("/issue/number")));
    number.and_then(Value::as_u64).ok_or_else(not_on_a_pr)
}

fn gitlab(given: &Given, var: &dyn Fn(&str) -> Option<String>) -> Result<Target> {
    let api = given.api_url.clone().or_else(|| var("CI_API_V4_URL")).ok_or_else(|| {
        ErrorKind::ArgumentsInvalid.error("no GitLab API: CI_API_V4_URL is not set; give --api-url https://HOST/api/v4")
    })?;
    let project = given.project.clone().or_else(|| var("CI_PROJECT_ID")).ok_or_else(|| {
        ErrorKind::ArgumentsInvalid.error("no project: CI_PROJECT_ID is not set; give --project ID (or group/name)")
    })?;
    let number = match given.mr.or_else(|| var("CI_MERGE_REQUEST_IID").and_then(|v| v.parse().ok())) {
        Some(n) => n,
        None => {
            return Err(ErrorKind::ArgumentsInvalid.error(
                "this pipeline is not for a merge request (CI_MERGE_REQUEST_IID is not set): run the job with \
                 `rules: [{ if: $CI_PIPELINE_SOURCE == \"merge_request_event\" }]`, or give --mr IID",
            ))
        }
    };
    let variable = given.token_env.clone().unwrap_or_else(|| "GITLAB_TOKEN".into());
    let value = var(&variable).ok_or_else(|| {
        ErrorKind::ArgumentsInvalid.error(format!(
            "no token: {variable} is not set; make a project access token with the `api` scope and the Reporter \
             role, store it as a masked CI/CD variable {variable} (CI_JOB_TOKEN cannot write notes), or name \
             another variable with --token-env"
        ))
    })?;
    let token = Token { header: "PRIVATE-TOKEN", value, prefix: "", variable };
    // A path (group/name) goes in the URL encoded, as GitLab's API asks.
    let project = project.replace('/', "%2F");
    Ok(Target { platform: Platform::Gitlab, api: api.trim_end_matches('/').into(), project, number, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn github_actions_variables_name_the_pull_request() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"action": "synchronize", "pull_request": {"number": 12}}"#).unwrap();
        let vars = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
            ("GITHUB_TOKEN", "ghs_x"),
        ];
        let t = resolve(&Given::default(), env(&vars)).unwrap();
        assert_eq!(
            (t.platform, t.api.as_str(), t.shown()),
            (Platform::Github, "https://api.github.com", "pull request acme/shop#12".into())
        );
        std::fs::write(&event, r#"{"ref": "refs/heads/main"}"#).unwrap();
        let vars = [("GITHUB_EVENT_NAME", "push"), vars[0], vars[1], vars[2], vars[3]];
        let e = resolve(&Given::default(), env(&vars)).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::ArgumentsInvalid);
        assert!(e.render().contains("not on a pull request (GITHUB_EVENT_NAME=push)"), "{}", e.render());
        let t = resolve(&Given { pr: Some(7), ..Given::default() }, env(&vars)).unwrap();
        assert_eq!(t.number, 7);
    }

    #[test]
    fn gitlab_ci_variables_name_the_merge_request() {
        let vars = [
            ("GITLAB_CI", "true"),
            ("CI_API_V4_URL", "https://gitlab.example/api/v4/"),
            ("CI_PROJECT_ID", "42"),
            ("CI_MERGE_REQUEST_IID", "7"),
            ("GITLAB_TOKEN", "glpat-x"),
        ];
        let t = resolve(&Given::default(), env(&vars)).unwrap();
        assert_eq!((t.api.as_str(), t.shown()), ("https://gitlab.example/api/v4", "merge request 42!7".into()));
        assert_eq!((t.token.header, t.token.prefix), ("PRIVATE-TOKEN", ""));
        let e = resolve(&Given::default(), env(&vars[..4])).err().unwrap();
        assert!(e.render().contains("no token: GITLAB_TOKEN is not set"), "{}", e.render());
        assert!(!e.render().contains("glpat"));
        let e = resolve(&Given::default(), env(&[vars[0], vars[1], vars[2], vars[4]])).err().unwrap();
        assert!(e.render().contains("not for a merge request"), "{}", e.render());
    }

    #[test]
    fn nothing_set_says_which_flags_to_give() {
        let e = resolve(&Given::default(), env(&[])).err().unwrap();
        assert!(e.render().contains("give --platform github"), "{}", e.render());
    }
}
