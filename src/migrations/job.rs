//! A Kubernetes Job manifest as the launch of the migrations
//! (`migrations.job`): the exact one the Helm chart deploys, after `helm
//! template`. From its pod's container: the image, command and args, the
//! literal `env` values and the working directory. What a cluster would
//! fill in (`valueFrom` secrets and config maps, `envFrom`) cannot be read
//! here: each such name is listed as not rehearsed, unless the scenario's
//! `migrations.env` gives it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{ErrorKind, Result};

/// The Job's container, as rehearse runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// `metadata.name`.
    pub name: String,
    /// The container's `name`.
    pub container: String,
    pub image: String,
    /// `command` (the image's ENTRYPOINT when absent) and `args`.
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// Literal `env` values, in the manifest's order.
    pub env: Vec<(String, String)>,
    /// `valueFrom` entries by name, and `envFrom` sources, as the report lists them.
    pub from_cluster: Vec<String>,
    pub working_dir: Option<String>,
}

impl JobSpec {
    /// The revision an `alembic upgrade REV` in the Job's command line upgrades to.
    pub fn alembic_target(&self) -> Option<String> {
        let words: Vec<&str> = self.command.iter().chain(&self.args).map(String::as_str).collect();
        let upgrade = words.iter().position(|w| *w == "upgrade")?;
        words[upgrade + 1..].iter().find(|w| !w.starts_with('-')).map(|w| w.to_string())
    }
}

#[derive(Deserialize)]
struct Document {
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    spec: Option<JobBody>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    name: Option<String>,
}

#[derive(Deserialize)]
struct JobBody {
    template: PodTemplate,
}

#[derive(Deserialize)]
struct PodTemplate {
    spec: PodSpec,
}

#[derive(Deserialize)]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: String,
    image: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    #[serde(default)]
    env_from: Vec<BTreeMap<String, serde_yaml::Value>>,
    working_dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvVar {
    name: String,
    value: Option<String>,
    value_from: Option<serde_yaml::Value>,
}

/// Reads the one Job in `path` (a file of one or more YAML documents) and
/// its container `container`, or its only one.
pub fn read(path: &Path, container: Option<&str>) -> Result<JobSpec> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ErrorKind::MigrationsInvalid.because(
            format!("cannot read the Job manifest migrations.job {shown}: render it with `helm template` into a file"),
            e,
        )
    })?;
    let job = the_job(&text, &shown)?;
    let name = job.metadata.name.unwrap_or_else(|| "(unnamed)".into());
    let containers = job.spec.map(|s| s.template.spec.containers).unwrap_or_default();
    let chosen = the_container(containers, container, &name, &shown)?;
    let image = chosen.image.ok_or_else(|| {
        ErrorKind::MigrationsInvalid.error(format!("container {} of Job {name} in {shown} names no image", chosen.name))
    })?;
    let (env, from_cluster) = environment(chosen.env, chosen.env_from);
    Ok(JobSpec {
        name,
        container: chosen.name,
        image,
        command: chosen.command,
        args: chosen.args,
        env,
        from_cluster,
        working_dir: chosen.working_dir,
    })
}

/// The one `kind: Job` document among the YAML documents of `text`.
fn the_job(text: &str, shown: &str) -> Result<Document> {
    let mut jobs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|e| ErrorKind::MigrationsInvalid.because(format!("migrations.job {shown} is not YAML"), e))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("Job") {
            continue;
        }
        let job: Document = serde_yaml::from_value(value).map_err(|e| {
            ErrorKind::MigrationsInvalid.because(format!("migrations.job {shown}: a Job without a pod template"), e)
        })?;
        jobs.push(job);
    }
    match jobs.len() {
        1 => {
            let job = jobs.remove(0);
            debug_assert_eq!(job.kind.as_deref(), Some("Job"));
            Ok(job)
        }
        0 => Err(ErrorKind::MigrationsInvalid.error(format!(
            "migrations.job {shown} holds no `kind: Job`: point it at the Job that runs the migrations \
             (e.g. `helm template ... --show-only templates/migrate-job.yaml > migrate-job.yaml`)"
        ))),
        _ => {
            let names: Vec<String> = jobs.iter().map(|j| j.metadata.name.clone().unwrap_or_default()).collect();
            Err(ErrorKind::MigrationsInvalid.error(format!(
                "migrations.job {shown} holds {} Jobs ({}): keep the one that runs the migrations in a file of its own",
                names.len(),
                names.join(", ")
            )))
        }
    }
}

/// The container named `wanted` of Job `name`, or its only one.
fn the_container(containers: Vec<Container>, wanted: Option<&str>, name: &str, shown: &str) -> Result<Container> {
    let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    match wanted {
        Some(wanted) => containers.into_iter().find(|c| c.name == wanted).ok_or_else(|| {
            ErrorKind::MigrationsInvalid.error(format!(
                "migrations.job_container {wanted} is not a container of Job {name} in {shown} (it has: {})",
                names.join(", ")
            ))
        }),
        None if containers.len() == 1 => Ok(containers.into_iter().next().expect("one container")),
        None => Err(ErrorKind::MigrationsInvalid.error(format!(
            "Job {name} in {shown} has {} containers ({}): name the one that runs the migrations with \
             migrations.job_container",
            names.len(),
            names.join(", ")
        ))),
    }
}

/// The container's literal `env` values, in order, and what a cluster would
/// fill in: `valueFrom` entries by name, `envFrom` sources.
fn environment(
    vars: Vec<EnvVar>,
    sources: Vec<BTreeMap<String, serde_yaml::Value>>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = Vec::new();
    let mut from_cluster = Vec::new();
    for var in vars {
        match (var.value, var.value_from) {
            (_, Some(_)) => from_cluster.push(var.name),
            (value, None) => env.push((var.name, value.unwrap_or_default())),
        }
    }
    for source in sources {
        let kinds: Vec<String> = source
            .iter()
            .filter(|(k, _)| k.ends_with("Ref"))
            .map(|(k, v)| format!("envFrom {k} {}", v.get("name").and_then(|n| n.as_str()).unwrap_or("?")))
            .collect();
        from_cluster.extend(kinds);
    }
    (env, from_cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {LOG_LEVEL: info}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: shop-migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: shop/app:1.4.2
          workingDir: /app
          command: ["alembic"]
          args: ["upgrade", "heads"]
          env:
            - {name: LOG_LEVEL, value: debug}
            - name: DATABASE_URL
              valueFrom: {secretKeyRef: {name: db, key: url}}
          envFrom:
            - configMapRef: {name: app-config}
        - name: cloudsql-proxy
          image: gcr.io/cloudsql-docker/gce-proxy:1.33
"#;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn the_jobs_container_is_read_and_what_the_cluster_fills_in_is_listed() {
        let f = write(MANIFEST);
        let job = read(f.path(), Some("migrate")).unwrap();
        assert_eq!((job.name.as_str(), job.image.as_str()), ("shop-migrate", "shop/app:1.4.2"));
        assert_eq!(job.working_dir.as_deref(), Some("/app"));
        assert_eq!(job.env, [("LOG_LEVEL".to_string(), "debug".to_string())]);
        assert_eq!(job.from_cluster, ["DATABASE_URL", "envFrom configMapRef app-config"]);
        assert_eq!(job.alembic_target().as_deref(), Some("heads"));
    }

    #[test]
    fn two_containers_need_a_name_and_no_job_is_an_error() {
        let f = write(MANIFEST);
        let e = read(f.path(), None).unwrap_err().render();
        assert!(e.contains("2 containers (migrate, cloudsql-proxy)") && e.contains("migrations.job_container"), "{e}");
        let f = write("kind: ConfigMap\nmetadata: {name: x}\n");
        assert!(read(f.path(), None).unwrap_err().render().contains("holds no `kind: Job`"));
    }
}
