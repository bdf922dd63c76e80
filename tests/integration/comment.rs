//! `rehearse comment` against a server of the test's own that speaks the
//! GitHub and GitLab endpoints it uses (support/review_server.rs), found
//! through GITHUB_API_URL / CI_API_V4_URL as on GitHub Enterprise and
//! self-managed GitLab: the first run creates the scenario's comment, the
//! next edits the same one (found past 100 comments, on a later page),
//! another scenario's comment is left alone, a 403 and a 404 say what to
//! change, and the token never shows.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{Certs, ReviewServer, Sandbox, REPO, TOKEN};

/// A finished run's output.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `rehearse comment ARGS` with only `env` set (none of this machine's CI variables).
fn comment(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_rehearse"))
        .arg("comment")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("rehearse runs");
    let ran = Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !ran.stdout.contains(TOKEN) && !ran.stderr.contains(TOKEN),
        "the token shows:\n{}\n{}",
        ran.stdout,
        ran.stderr
    );
    ran
}

/// The demo's report under `name` (its scenario renamed), in the sandbox.
fn report(sandbox: &Sandbox, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(REPO).join("tests/fixtures/report-v1-demo.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["scenario"] = name.into();
    let dir = sandbox.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.json"), json.to_string()).unwrap();
    dir
}

/// GitHub Actions' variables for pull request acme/shop#12 on `server`.
fn github(sandbox: &Sandbox, server: &ReviewServer, token: &str) -> Vec<(&'static str, String)> {
    let event = sandbox.write("event.json", r#"{"action": "opened", "pull_request": {"number": 12}}"#);
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_API_URL", server.url.clone()),
        ("GITHUB_REPOSITORY", "acme/shop".into()),
        ("GITHUB_EVENT_NAME", "pull_request".into()),
        ("GITHUB_EVENT_PATH", event.display().to_string()),
        ("GITHUB_TOKEN", token.into()),
    ]
}

/// GitLab CI's variables for merge request 42!7 on `server`.
fn gitlab(server: &ReviewServer) -> Vec<(&'static str, String)> {
    vec![
        ("GITLAB_CI", "true".into()),
        ("CI_API_V4_URL", format!("{}/api/v4", server.url)),
        ("CI_PROJECT_ID", "42".into()),
        ("CI_MERGE_REQUEST_IID", "7".into()),
        ("GITLAB_TOKEN", TOKEN.into()),
    ]
}

/// The comments holding `scenario`'s marker.
fn marked(server: &ReviewServer, scenario: &str) -> Vec<(u64, String)> {
    let marker = format!("<!-- rehearse-comment scenario={scenario} -->");
    server.comments().into_iter().filter(|(_, b)| b.contains(&marker)).collect()
}

#[test]
fn github_first_run_creates_the_next_edits_it_past_a_hundred_comments_and_leaves_others_alone() {
    let (sandbox, server) = (Sandbox::new(), ReviewServer::start());
    let other = server.seed("<!-- rehearse-comment scenario=other -->\nanother scenario's comment");
    for i in 0..150 {
        server.seed(&format!("a reviewer's comment {i}"));
    }
    let env = github(&sandbox, &server, TOKEN);
    let nightly = report(&sandbox, "nightly");
    let url = "https://ci.example/run/1";
    let first = comment(sandbox.path(), &[nightly.to_str().unwrap(), "--artifact-url", url], &env);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let created = marked(&server, "nightly");
    assert_eq!(created.len(), 1, "one comment");
    assert!(
        first.stderr.contains(&format!("created comment {} on pull request acme/shop#12", created[0].0)),
        "{}",
        first.stderr
    );
    assert!(created[0].1.contains("## Migration rehearsal: nightly") && created[0].1.contains(url));
    // The list was read to its last page (151 comments: 2 pages of 100) before creating.
    let lists = server.requests().iter().filter(|r| r.starts_with("GET /repos/acme/shop/issues/12/comments")).count();
    assert_eq!(lists, 2, "{:?}", server.requests());

    // Second run: the comment is the 152nd, on page 2; it is edited, not added.
    let second = comment(sandbox.path(), &[nightly.join("report.json").to_str().unwrap()], &env);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let updated = marked(&server, "nightly");
    assert_eq!(updated.len(), 1, "still one comment: {:?}", updated.iter().map(|c| c.0).collect::<Vec<_>>());
    assert_eq!(updated[0].0, created[0].0);
    assert!(!updated[0].1.contains(url), "the body is the second run's");
    assert!(second.stderr.contains(&format!("updated comment {}", created[0].0)), "{}", second.stderr);
    assert!(server
        .requests()
        .iter()
        .any(|r| r.starts_with(&format!("PATCH /repos/acme/shop/issues/comments/{}", created[0].0))));
    let untouched = server.comments().into_iter().find(|(id, _)| *id == other).unwrap();
    assert_eq!(untouched.1, "<!-- rehearse-comment scenario=other -->\nanother scenario's comment");
    assert_eq!(server.comments().len(), 152);
    // Every request carried the token, as a bearer token.
    assert!(server.state.lock().unwrap().tokens.iter().all(|t| t == &format!("Bearer {TOKEN}")));
}

#[test]
fn gitlab_creates_then_edits_its_note_through_x_next_page() {
    let (sandbox, server) = (Sandbox::new(), ReviewServer::start());
    for i in 0..120 {
        server.seed(&format!("a note {i}"));
    }
    let env = gitlab(&server);
    let nightly = report(&sandbox, "nightly");
    for (run, verb) in [(1, "created"), (2, "updated")] {
        let ran = comment(sandbox.path(), &[nightly.to_str().unwrap()], &env);
        assert_eq!(ran.code, 0, "run {run}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(&format!("{verb} comment")) && ran.stderr.contains("merge request 42!7"),
            "{}",
            ran.stderr
        );
        assert_eq!(marked(&server, "nightly").len(), 1);
    }
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.starts_with("POST /api/v4/projects/42/merge_requests/7/notes")), "{requests:?}");
    assert!(requests.iter().any(|r| r.starts_with("PUT /api/v4/projects/42/merge_requests/7/notes/")), "{requests:?}");
    assert!(requests.iter().any(|r| r.contains("/notes?per_page=100&page=2")), "{requests:?}");
    assert!(server.state.lock().unwrap().tokens.iter().all(|t| t == TOKEN), "PRIVATE-TOKEN carries the token as it is");
}

#[test]
fn refusals_say_what_to_change_and_never_show_the_token() {
    let (sandbox, server) = (Sandbox::new(), ReviewServer::start());
    let nightly = report(&sandbox, "nightly");
    let args = [nightly.to_str().unwrap()];
    // A wrong token: 401, whose message quotes what it was sent.
    let ran = comment(sandbox.path(), &args, &github(&sandbox, &server, "tok-SECRET-4242-wrong"));
    assert_eq!(ran.code, 4, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("the token in GITHUB_TOKEN was refused")
            && ran.stderr.contains("(401: Bad credentials: Bearer ********)"),
        "{}",
        ran.stderr
    );
    let env = github(&sandbox, &server, TOKEN);
    server.state.lock().unwrap().refuse = Some(403);
    let ran = comment(sandbox.path(), &args, &env);
    assert_eq!(ran.code, 4);
    assert!(ran.stderr.contains("may not read its comments on pull request acme/shop#12"), "{}", ran.stderr);
    assert!(ran.stderr.contains("permissions: pull-requests: write"), "{}", ran.stderr);
    server.state.lock().unwrap().refuse = Some(404);
    let ran = comment(sandbox.path(), &args, &env);
    assert_eq!(ran.code, 4);
    assert!(ran.stderr.contains("pull request acme/shop#12 was not found at http://127.0.0.1:"), "{}", ran.stderr);
    assert!(ran.stderr.contains("check --repo (GITHUB_REPOSITORY) and --pr"), "{}", ran.stderr);
    server.state.lock().unwrap().refuse = None;
    // A push, not a pull request: exit 3 before any request.
    let before = server.requests().len();
    let mut push = env.clone();
    push.retain(|(k, _)| *k != "GITHUB_EVENT_PATH" && *k != "GITHUB_EVENT_NAME");
    push.push(("GITHUB_EVENT_NAME", "push".into()));
    let ran = comment(sandbox.path(), &args, &push);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(ran.stderr.contains("this job is not on a pull request (GITHUB_EVENT_NAME=push)"), "{}", ran.stderr);
    assert_eq!(server.requests().len(), before);
    assert!(server.comments().is_empty());
}

#[test]
fn a_nightly_comments_only_when_the_outcome_changed() {
    let (sandbox, server) = (Sandbox::new(), ReviewServer::start());
    let env = github(&sandbox, &server, TOKEN);
    let tonight = report(&sandbox, "nightly");
    let last_night = tonight.join("report.json");
    let ran =
        comment(sandbox.path(), &[tonight.to_str().unwrap(), "--changed-since", last_night.to_str().unwrap()], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("no comment posted"), "{}", ran.stderr);
    assert!(server.requests().is_empty());
    // Last night one migration failed: tonight differs, so it comments.
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&last_night).unwrap()).unwrap();
    json["migrations"][0]["status"] = "failed".into();
    let previous = sandbox.write("previous.json", &json.to_string());
    let ran =
        comment(sandbox.path(), &[tonight.to_str().unwrap(), "--changed-since", previous.to_str().unwrap()], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(marked(&server, "nightly").len(), 1);
}

#[test]
fn print_shows_the_body_and_posts_nothing() {
    let sandbox = Sandbox::new();
    let nightly = report(&sandbox, "nightly");
    let ran = comment(sandbox.path(), &[nightly.to_str().unwrap(), "--print"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.starts_with("<!-- rehearse-comment scenario=nightly -->\n## Migration rehearsal: nightly"),
        "{}",
        ran.stdout
    );
    let ran = comment(sandbox.path(), &[sandbox.path().join("nothing").to_str().unwrap()], &[]);
    assert_eq!(ran.code, 3);
    assert!(ran.stderr.contains("cannot read the report"), "{}", ran.stderr);
}

#[test]
fn an_api_behind_a_company_ca_verifies_with_this_machines_roots() {
    let (sandbox, certs) = (Sandbox::new(), Certs::make());
    let server = ReviewServer::start_tls(&certs.path("server.crt"), &certs.path("server.key"));
    let nightly = report(&sandbox, "nightly");
    let mut env = github(&sandbox, &server, TOKEN);
    // Not among the machine's roots (nor Mozilla's): the certificate is refused, nothing is sent.
    let ran = comment(sandbox.path(), &[nightly.to_str().unwrap()], &env);
    assert_eq!(ran.code, 4, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("got no answer") && ran.stderr.to_lowercase().contains("certificate"),
        "{}",
        ran.stderr
    );
    assert!(server.requests().is_empty());
    // The company CA as this machine's roots (SSL_CERT_FILE, as curl and OpenSSL read it).
    env.push(("SSL_CERT_FILE", certs.path_str("ca.crt")));
    let ran = comment(sandbox.path(), &[nightly.to_str().unwrap()], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(marked(&server, "nightly").len(), 1);
}

#[test]
fn a_body_over_githubs_limit_is_cut_at_a_section_and_still_posted() {
    let (sandbox, server) = (Sandbox::new(), ReviewServer::start());
    // The demo's eight migrations five times over: about 115 kB of body.
    let dir = report(&sandbox, "big");
    let file = dir.join("report.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let migrations = json["migrations"].as_array().unwrap().clone();
    let many: Vec<serde_json::Value> = (0..5)
        .flat_map(|round| {
            migrations.iter().map(move |m| {
                let mut m = m.clone();
                m["id"] = format!("{}_{round}", m["id"].as_str().unwrap()).into();
                m
            })
        })
        .collect();
    json["migrations"] = many.into();
    std::fs::write(&file, json.to_string()).unwrap();
    let whole = comment(sandbox.path(), &[dir.to_str().unwrap(), "--print"], &[]).stdout;
    assert!(whole.len() > 65_536, "{} bytes: not over the limit", whole.len());
    let ran = comment(sandbox.path(), &[dir.to_str().unwrap()], &github(&sandbox, &server, TOKEN));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let posted = &marked(&server, "big")[0].1;
    assert!(posted.len() <= 65_536, "{} bytes posted", posted.len());
    let kept = posted.split("\n*Cut to fit the comment: ").next().unwrap();
    assert!(whole.starts_with(kept) && kept.ends_with("</details>\n\n"), "cut after a whole migration's section");
    assert!(
        posted.contains("section(s) left out; the full report (report.md among the job's artifacts) has every one.")
    );
}
