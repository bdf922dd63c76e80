//! The GitHub Action (action.yml) and the GitLab CI component
//! (templates/rehearse.yml), validated with check-jsonschema from PyPI
//! against SchemaStore's Action metadata and GitLab CI schemas; the
//! component's inputs against the keys GitLab documents for `spec:inputs`;
//! and the workflows and includes in docs/ci.md against both: valid, and
//! using only inputs the action and the component declare.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::support::{made_venv, REPO};

/// `check-jsonschema --builtin-schema SCHEMA FILE`: Ok, or its complaint.
fn check(schema: &str, file: &Path) -> Result<(), String> {
    let python = made_venv("check-jsonschema", &["check-jsonschema==0.39.0"]);
    let bin = Path::new(&python).with_file_name("check-jsonschema");
    let out = std::process::Command::new(bin).args(["--builtin-schema", schema]).arg(file).output().unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))),
    }
}

/// `text` in a file of the test's own.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn keys(map: &Value) -> BTreeSet<String> {
    map.as_mapping().into_iter().flatten().filter_map(|(k, _)| k.as_str().map(str::to_string)).collect()
}

/// The ```yaml blocks of docs/ci.md that hold `needle`.
fn doc_blocks(needle: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(REPO).join("docs/ci.md")).unwrap();
    doc.split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .filter(|b| b.contains(needle))
        .map(String::from)
        .collect()
}

#[test]
fn the_action_is_valid_action_metadata_and_the_docs_use_only_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let action = Path::new(REPO).join("action.yml");
    check("vendor.github-actions", &action).unwrap();
    // The schema does catch a broken action: one without `runs`.
    let broken = file(dir.path(), "broken.yml", "name: x\ndescription: y\ninputs: {}\n");
    assert!(check("vendor.github-actions", &broken).is_err());
    let inputs = keys(&serde_yaml::from_str::<Value>(&std::fs::read_to_string(&action).unwrap()).unwrap()["inputs"]);
    let workflows = doc_blocks("uses: your-org/rehearse@");
    assert_eq!(workflows.len(), 2, "the pull-request workflow and the nightly");
    for (i, workflow) in workflows.iter().enumerate() {
        check("vendor.github-workflows", &file(dir.path(), &format!("workflow-{i}.yml"), workflow)).unwrap();
        let yaml: Value = serde_yaml::from_str(workflow).unwrap();
        let steps = yaml["jobs"]["rehearse"]["steps"].as_sequence().unwrap();
        let ours =
            steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("your-org/rehearse@"))).unwrap();
        let used = keys(&ours["with"]);
        assert!(used.is_subset(&inputs), "docs/ci.md uses {:?}, not inputs of action.yml", used.difference(&inputs));
        assert!(used.contains("scenario"), "the required input");
    }
}

/// The keys GitLab documents for an input in `spec:inputs`, and its types.
const INPUT_KEYS: [&str; 5] = ["default", "description", "options", "regex", "type"];
const INPUT_TYPES: [&str; 4] = ["string", "number", "boolean", "array"];

#[test]
fn the_component_is_valid_gitlab_ci_and_the_docs_use_only_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(Path::new(REPO).join("templates/rehearse.yml")).unwrap();
    // A component is two YAML documents: its spec, then its jobs.
    let (head, body) = text.split_once("\n---\n").expect("a spec header, then ---");
    check("vendor.gitlab-ci", &file(dir.path(), "spec.yml", head)).unwrap();
    check("vendor.gitlab-ci", &file(dir.path(), "jobs.yml", body)).unwrap();
    assert!(check("vendor.gitlab-ci", &file(dir.path(), "typo.yml", "job:\n  scirpt: [x]\n")).is_err());
    let spec: Value = serde_yaml::from_str(head).unwrap();
    let inputs = &spec["spec"]["inputs"];
    for (name, input) in inputs.as_mapping().unwrap() {
        let unknown: Vec<_> = keys(input).into_iter().filter(|k| !INPUT_KEYS.contains(&k.as_str())).collect();
        assert!(unknown.is_empty(), "input {name:?} has keys GitLab does not document: {unknown:?}");
        if let Some(t) = input["type"].as_str() {
            assert!(INPUT_TYPES.contains(&t), "input {name:?}: type {t}");
        }
    }
    let declared = keys(inputs);
    let used: BTreeSet<String> =
        body.split("$[[ inputs.").skip(1).map(|rest| rest.split(" ]]").next().unwrap().to_string()).collect();
    assert!(used.is_subset(&declared), "the jobs use undeclared inputs {:?}", used.difference(&declared));
    assert!(declared.is_subset(&used), "declared but unused {:?}", declared.difference(&used));
    let includes = doc_blocks("component: ");
    assert_eq!(includes.len(), 1);
    check("vendor.gitlab-ci", &file(dir.path(), "include.yml", &includes[0])).unwrap();
    let include: Value = serde_yaml::from_str(&includes[0]).unwrap();
    let given = keys(&include["include"][0]["inputs"]);
    assert!(given.is_subset(&declared), "docs/ci.md gives {:?}", given.difference(&declared));
    let required: BTreeSet<String> = inputs
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.get("default").is_none())
        .filter_map(|(k, _)| k.as_str().map(String::from))
        .collect();
    assert!(required.is_subset(&given), "docs/ci.md leaves out required inputs {:?}", required.difference(&given));
}
