//! A pull or merge request's comments, through the few REST endpoints
//! both platforms document: list (100 a page, every page), create, edit.
//! GitHub: `GET|POST /repos/{repo}/issues/{n}/comments`, `PATCH
//! /repos/{repo}/issues/comments/{id}`. GitLab: `GET|POST
//! /projects/{id}/merge_requests/{iid}/notes`, `PUT …/notes/{note_id}`.

use serde_json::{json, Value};

use super::http::{Answer, Client};
use super::target::{Platform, Target};
use crate::error::{Error, ErrorKind, Result};

/// Past this many pages of 100 the marker is not looked for further.
const MAX_PAGES: usize = 200;

/// What became of the comment.
#[derive(Debug, PartialEq, Eq)]
pub enum Upserted {
    Created { id: u64, url: Option<String> },
    Updated { id: u64, url: Option<String> },
}

pub struct Review<'a> {
    target: &'a Target,
    client: Client,
}

impl<'a> Review<'a> {
    pub fn new(target: &'a Target) -> Review<'a> {
        let headers = match target.platform {
            // GitHub's documented media type and API version for these endpoints.
            Platform::Github => vec![("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28")],
            Platform::Gitlab => vec![("Accept", "application/json")],
        };
        Review { target, client: Client::new(target.token.clone(), headers) }
    }

    /// The longest body the platform takes: GitHub's 65,536 characters for a
    /// comment, GitLab's 1,000,000 for a note (bytes here, so never over).
    pub fn limit(&self) -> usize {
        match self.target.platform {
            Platform::Github => 65_536,
            Platform::Gitlab => 1_000_000,
        }
    }

    fn comments_url(&self) -> String {
        let t = self.target;
        match t.platform {
            Platform::Github => format!("{}/repos/{}/issues/{}/comments", t.api, t.project, t.number),
            Platform::Gitlab => format!("{}/projects/{}/merge_requests/{}/notes", t.api, t.project, t.number),
        }
    }

    fn comment_url(&self, id: u64) -> String {
        let t = self.target;
        match t.platform {
            Platform::Github => format!("{}/repos/{}/issues/comments/{id}", t.api, t.project),
            Platform::Gitlab => format!("{}/{id}", self.comments_url()),
        }
    }

    /// Edits the comment holding `marker` to `body`, or creates one.
    pub fn upsert(&self, marker: &str, body: &str) -> Result<Upserted> {
        let payload = json!({ "body": body });
        match self.find(marker)? {
            Some(id) => {
                let method = if self.target.platform == Platform::Github { "PATCH" } else { "PUT" };
                let answer = self.call(method, &self.comment_url(id), Some(&payload), "edit its comment")?;
                Ok(Upserted::Updated { id, url: html_url(&answer.json) })
            }
            None => {
                let answer = self.call("POST", &self.comments_url(), Some(&payload), "write a comment")?;
                let id = answer.json.get("id").and_then(Value::as_u64).unwrap_or_default();
                Ok(Upserted::Created { id, url: html_url(&answer.json) })
            }
        }
    }

    /// The first comment whose body holds `marker`, over every page.
    fn find(&self, marker: &str) -> Result<Option<u64>> {
        let mut url = Some(format!("{}?per_page=100", self.comments_url()));
        for _ in 0..MAX_PAGES {
            let Some(page) = url.take() else { break };
            let answer = self.call("GET", &page, None, "read its comments")?;
            let found = answer
                .json
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c.get("body").and_then(Value::as_str).is_some_and(|b| b.contains(marker)));
            if let Some(id) = found.and_then(|c| c.get("id")).and_then(Value::as_u64) {
                return Ok(Some(id));
            }
            url = answer.next;
        }
        Ok(None)
    }

    /// One request; a status other than 2xx is an error saying what to change.
    fn call(&self, method: &str, url: &str, body: Option<&Value>, doing: &str) -> Result<Answer> {
        let answer = self.client.send(method, url, body)?;
        match answer.status {
            200..=299 => Ok(answer),
            status => Err(self.refused(status, &answer.message, doing)),
        }
    }

    fn refused(&self, status: u16, message: &str, doing: &str) -> Error {
        let (t, variable) = (self.target, &self.client.token().variable);
        let shown = t.shown();
        let why = match (status, t.platform) {
            (401, _) => {
                format!("the token in {variable} was refused: it is expired, revoked or not a token for {}", t.api)
            }
            (403, Platform::Github) => format!(
                "the token in {variable} may not {doing} on {shown}: give the job `permissions: pull-requests: write` \
                 (a pull request from a fork gets a read-only GITHUB_TOKEN: comment from a `workflow_run` job), or \
                 use a token with that permission"
            ),
            (403, Platform::Gitlab) => format!(
                "the token in {variable} may not {doing} on {shown}: it needs the `api` scope and at least the \
                 Reporter role in the project"
            ),
            (404, Platform::Github) => format!(
                "{shown} was not found at {}: check --repo (GITHUB_REPOSITORY) and --pr, and that the token in \
                 {variable} can see the repository (a private one answers 404 to a token without access)",
                t.api
            ),
            (404, Platform::Gitlab) => format!(
                "{shown} was not found at {}: check --project (CI_PROJECT_ID) and --mr (CI_MERGE_REQUEST_IID), and \
                 that the token in {variable} is a member of the project",
                t.api
            ),
            _ => format!("{} answered when asked to {doing} on {shown}", t.api),
        };
        ErrorKind::CommentFailed.error(format!("cannot comment: {why} ({status}: {message})"))
    }
}

/// The comment's page, when the platform says (GitHub's `html_url`).
fn html_url(json: &Value) -> Option<String> {
    json.get("html_url").and_then(Value::as_str).map(str::to_string)
}
