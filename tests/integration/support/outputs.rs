//! Reading what a run wrote as its consumers do (JUnit with an XML parser),
//! and the tools `make deps` installs for the tests.

use std::path::Path;

use super::REPO;

/// One `<testcase>` of junit.xml, as a CI system reads it.
#[derive(Debug)]
pub struct JunitCase {
    pub suite: String,
    pub name: String,
    pub classname: String,
    /// (type, message, body) of its `<failure>`.
    pub failure: Option<(String, String, String)>,
    pub skipped: bool,
    pub out: String,
}

/// Parses junit.xml with a real XML parser; panics when it is not well-formed.
pub fn junit_cases(xml: &str) -> Vec<JunitCase> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("junit.xml does not parse: {e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let mut cases = Vec::new();
    for suite in root.children().filter(|n| n.has_tag_name("testsuite")) {
        for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
            let child = |tag: &str| case.children().find(|n| n.has_tag_name(tag));
            cases.push(JunitCase {
                suite: suite.attribute("name").unwrap_or_default().to_string(),
                name: case.attribute("name").unwrap_or_default().to_string(),
                classname: case.attribute("classname").unwrap_or_default().to_string(),
                failure: child("failure").map(|f| {
                    (
                        f.attribute("type").unwrap_or_default().to_string(),
                        f.attribute("message").unwrap_or_default().to_string(),
                        f.text().unwrap_or_default().to_string(),
                    )
                }),
                skipped: child("skipped").is_some(),
                out: child("system-out").and_then(|n| n.text()).unwrap_or_default().to_string(),
            });
        }
    }
    cases
}

/// The interpreter of the venv `make deps` creates, with Alembic from PyPI.
pub fn venv_python() -> String {
    let python = format!("{REPO}/.venv/bin/python");
    assert!(Path::new(&python).exists(), "{python} is missing: run `make deps` (it creates the venv with Alembic)");
    python
}

/// The local PostgreSQL client binaries (psql), as `make deps` installs them.
pub fn pg_bin_dir() -> String {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql").unwrap().flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.last().unwrap().join("bin").display().to_string()
}

/// The interpreter of a venv made for a test with `packages` from PyPI
/// (`python3 -m venv`, then pip), kept under target/test-venvs/<name> and
/// made again only when a run did not finish making it.
pub fn made_venv(name: &str, packages: &[&str]) -> String {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(REPO).join("target/test-venvs").join(name);
    let python = dir.join("bin/python");
    let done = dir.join("rehearse-made");
    let wanted = packages.join("\n");
    if std::fs::read_to_string(&done).ok().as_deref() == Some(wanted.as_str()) {
        return python.display().to_string();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    };
    run(std::process::Command::new("python3").args(["-m", "venv"]).arg(&dir));
    run(std::process::Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(packages));
    std::fs::write(&done, wanted).unwrap();
    python.display().to_string()
}
