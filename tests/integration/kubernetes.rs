//! The Kubernetes manifests of deploy/kubernetes/ (docs/kubernetes.md):
//! valid, strictly, by kubernetes-validate's schemas for Kubernetes 1.31
//! (podFailurePolicy's first GA release) and for its default, the newest;
//! the VolumeSnapshot, a CRD it has no schema for, is the one resource it
//! skips, and is checked here against what refers to it. The scenario in
//! the ConfigMap is a valid scenario, each rehearse pod's CPU matches its
//! restore jobs, and every Job fails at once on rehearse's gate exit codes.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use crate::support::REPO;

const DIR: &str = "deploy/kubernetes";
const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";

/// Every YAML document of deploy/kubernetes/, with its file.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut docs = Vec::new();
    for file in manifest_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    docs
}

fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(format!("{REPO}/{DIR}"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{DIR} holds manifests");
    files
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn names_of(docs: &[(PathBuf, Value)], of_kind: &str) -> BTreeSet<String> {
    docs.iter().filter(|(_, d)| kind(d) == of_kind).map(|(_, d)| name(d).to_string()).collect()
}

/// The Job spec of a Job or a CronJob.
fn job_spec(doc: &Value) -> Option<&Value> {
    match kind(doc) {
        "Job" => Some(&doc["spec"]),
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]),
        _ => None,
    }
}

fn list(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

#[test]
fn the_deploy_manifests_are_valid_kubernetes() {
    let docs = documents();
    let snapshots = docs.iter().filter(|(_, d)| d["apiVersion"].as_str().unwrap_or("").starts_with(SNAPSHOT_GROUP));
    let unknown = snapshots.count();
    assert_eq!(unknown, names_of(&docs, "VolumeSnapshot").len(), "only VolumeSnapshots are of the CRD's group");
    let validate = format!("{REPO}/.venv/bin/kubernetes-validate");
    for version in ["1.31.0", "1.37.0"] {
        let out = std::process::Command::new(&validate)
            .args(["--strict", "--kubernetes-version", version])
            .args(manifest_files())
            .output()
            .unwrap_or_else(|e| {
                panic!("{validate}: {e} (make deps installs it into .venv from requirements-alembic.txt)")
            });
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{version}:\n{text}");
        let passed = text.lines().filter(|l| l.starts_with("INFO") && l.contains(" passed for resource ")).count();
        assert_eq!(passed, docs.len() - unknown, "every resource but the VolumeSnapshots passed ({version}):\n{text}");
        let warnings: Vec<&str> = text.lines().filter(|l| !l.starts_with("INFO")).collect();
        assert_eq!(warnings.len(), unknown, "{text}");
        assert!(
            warnings.iter().all(|w| w.contains("Couldn't find schema for kind VolumeSnapshot")),
            "the only resources not validated are the VolumeSnapshots:\n{text}"
        );
    }
}

/// What the validator cannot see: names that must match across files.
#[test]
fn the_deploy_manifests_refer_to_what_they_define() {
    let docs = documents();
    let (claims, config_maps, snapshots) =
        (names_of(&docs, "PersistentVolumeClaim"), names_of(&docs, "ConfigMap"), names_of(&docs, "VolumeSnapshot"));
    for (file, doc) in docs.iter().filter(|(_, d)| kind(d) == "VolumeSnapshot") {
        let source = doc["spec"]["source"]["persistentVolumeClaimName"].as_str().unwrap_or("");
        assert!(claims.contains(source), "{}: snapshot of {source:?}, not one of {claims:?}", file.display());
    }
    let mut pods = 0;
    for (file, doc) in &docs {
        let Some(spec) = job_spec(doc) else { continue };
        pods += 1;
        let pod = &spec["template"]["spec"];
        let at = format!("{} ({})", file.display(), name(doc));
        let mut volumes = BTreeSet::new();
        for volume in list(&pod["volumes"]) {
            volumes.insert(volume["name"].as_str().unwrap().to_string());
            if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                assert!(claims.contains(claim), "{at}: claim {claim:?} is not defined");
            }
            if let Some(map) = volume["configMap"]["name"].as_str() {
                assert!(config_maps.contains(map), "{at}: config map {map:?} is not defined");
            }
            let source = &volume["ephemeral"]["volumeClaimTemplate"]["spec"]["dataSource"];
            if !source.is_null() {
                assert_eq!(
                    (source["kind"].as_str(), source["apiGroup"].as_str()),
                    (Some("VolumeSnapshot"), Some(SNAPSHOT_GROUP))
                );
                let snapshot = source["name"].as_str().unwrap();
                assert!(snapshots.contains(snapshot), "{at}: snapshot {snapshot:?} is not defined");
            }
        }
        for container in list(&pod["initContainers"]).iter().chain(list(&pod["containers"])) {
            for mount in list(&container["volumeMounts"]) {
                let volume = mount["name"].as_str().unwrap();
                assert!(volumes.contains(volume), "{at}: mount of {volume:?}, which the pod does not have");
            }
        }
    }
    assert!(pods >= 3, "the CronJob, the Job on a snapshot clone and the Helm hook");
}

/// The scenario is valid; each Job fails at once on exits 1, 2 and 3 (an
/// answer, not a flake) and retries the rest; its rehearse container
/// requests a CPU for every two restore jobs (two jobs a CPU, restore.md).
#[test]
fn the_deploy_jobs_gate_on_rehearses_exit_codes_with_the_scenarios_cpus() {
    let docs = documents();
    let (_, config_map) = docs.iter().find(|(_, d)| kind(d) == "ConfigMap").expect("a scenario ConfigMap");
    let data = config_map["data"].as_mapping().unwrap();
    let mut restore_jobs = None;
    for (key, text) in data {
        let key = key.as_str().unwrap();
        let scenario = rehearse::plan::scenario::parse(text.as_str().unwrap(), std::path::Path::new(key))
            .unwrap_or_else(|e| panic!("the ConfigMap's {key} is not a valid scenario: {e}"));
        restore_jobs = scenario.postgres.restore_jobs;
    }
    let restore_jobs = restore_jobs.expect("the scenario sets postgres.restore_jobs");
    for (file, doc) in &docs {
        let Some(spec) = job_spec(doc) else { continue };
        let at = format!("{} ({})", file.display(), name(doc));
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"].as_str(), Some("Never"), "{at}: podFailurePolicy needs it");
        let fail_job = list(&spec["podFailurePolicy"]["rules"])
            .iter()
            .find(|r| r["action"].as_str() == Some("FailJob"))
            .unwrap_or_else(|| panic!("{at}: no FailJob rule"));
        let codes = &fail_job["onExitCodes"];
        assert_eq!(
            (codes["containerName"].as_str(), codes["operator"].as_str()),
            (Some("rehearse"), Some("In")),
            "{at}"
        );
        let values: Vec<u64> = list(&codes["values"]).iter().filter_map(Value::as_u64).collect();
        assert_eq!(values, [1, 2, 3], "{at}");
        assert!(spec["backoffLimit"].as_u64().is_some_and(|n| n >= 1), "{at}: exit 4 and crashes are retried");
        let rehearse = list(&pod["containers"]).iter().find(|c| c["name"].as_str() == Some("rehearse")).unwrap();
        let cpu: u32 = rehearse["resources"]["requests"]["cpu"].as_str().unwrap().parse().unwrap();
        assert_eq!(cpu * 2, restore_jobs, "{at}: {cpu} CPUs for restore_jobs: {restore_jobs}");
        for arg in list(&rehearse["args"]).iter().filter_map(Value::as_str) {
            if let Some(file) = arg.strip_prefix("/scenario/") {
                assert!(data.contains_key(file), "{at}: /scenario/{file} is not in the ConfigMap");
            }
        }
    }
}
