//! `rehearse cleanup`: removes what a crashed run (kill -9, a power cut)
//! left behind: cluster dirs under the temp dir whose marker names a process
//! that is gone (their server stopped with pg_ctl first), clones whose
//! marker file in the temp dir names a process that is gone (their copies
//! dropped, then `postgres.clone.destroy` run with the URL and id the
//! marker recorded), containers with the `rehearse` label started from
//! this machine by a process that is gone, and, given `--url`, throwaway
//! databases on that server made from this machine by a process that is gone. A live run's leftovers are listed
//! and never touched, so cleanup is safe to run while other rehearsals run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::clone;
use crate::backend::docker::{self, LabelledContainer};
use crate::backend::local::{self, Marker};
use crate::backend::url;
use crate::error::Result;
use crate::sys::process::ChildCommand;

/// How messages name the server of `rehearse cleanup --url`: no scenario (and no `postgres.url`) is involved.
const CLEANUP_URL: &str = "--url";

/// One thing found, and what cleanup did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// "container 3f2a1b0c9d8e", "cluster dir /tmp/rehearse-x", "database rehearse_ab12".
    pub what: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Removed,
    /// Left alone, and why (a live run owns it, another machine made it).
    Kept(String),
    /// Could not be removed: why, and what to do.
    Failed(String),
}

/// Everything `rehearse cleanup` found, plus what it could not look at.
#[derive(Debug, Default)]
pub struct CleanupReport {
    pub leftovers: Vec<Leftover>,
    pub notes: Vec<String>,
}

impl CleanupReport {
    pub fn failed(&self) -> bool {
        self.leftovers.iter().any(|l| matches!(l.outcome, Outcome::Failed(_)))
    }

    /// One line per leftover, for the terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.leftovers {
            out.push_str(&match &l.outcome {
                Outcome::Removed => format!("removed {}\n", l.what),
                Outcome::Kept(why) => format!("kept    {}: {why}\n", l.what),
                Outcome::Failed(why) => format!("FAILED  {}: {why}\n", l.what),
            });
        }
        if self.leftovers.is_empty() {
            out.push_str("nothing to clean up: no leftovers of rehearse runs\n");
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }
}

/// Looks for leftovers in `temp_dir`, in Docker, and on `url` when given.
pub async fn cleanup(temp_dir: &Path, url: Option<&str>, cancel: &CancellationToken) -> Result<CleanupReport> {
    // A URL that is wrong (or has a TLS setting rehearse does not support) is
    // refused before anything is removed.
    let server = url.map(url::parse).transpose()?;
    let mut report = CleanupReport::default();
    for dir in cluster_dirs(temp_dir) {
        let leftover = clean_cluster_dir(&dir, cancel).await;
        report.leftovers.push(leftover);
    }
    for marker in clone::markers(temp_dir) {
        report.leftovers.push(clean_clone(&marker).await);
    }
    match docker::engine_version(cancel).await {
        Ok(_) => {
            for c in docker::labelled_containers(cancel).await? {
                report.leftovers.push(clean_container(&c, cancel).await);
            }
        }
        Err(why) => report.notes.push(format!("containers not checked: {why}")),
    }
    if let Some(server) = server {
        let version = url::server_version_num(&server, CLEANUP_URL).await?;
        for (name, comment) in url::leftover_databases(&server, CLEANUP_URL).await? {
            let what = format!("database {name} on {}", server.masked(&server.dbname));
            let outcome = match owner_from_comment(&comment) {
                None => {
                    Outcome::Kept("no rehearse owner recorded in its comment; drop it by hand if it is yours".into())
                }
                Some((pid, host)) => match still_owned(pid, &host) {
                    Some(why) => Outcome::Kept(why),
                    None => match url::drop_on(&server, &name, version, CLEANUP_URL).await {
                        Ok(()) => Outcome::Removed,
                        Err(e) => Outcome::Failed(e.with_causes()),
                    },
                },
            };
            report.leftovers.push(Leftover { what, outcome });
        }
    }
    Ok(report)
}

/// `rehearse-*` dirs in `temp_dir` that carry the marker file.
fn cluster_dirs(temp_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(temp_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rehearse-")))
        .filter(|p| p.join(local::MARKER_FILE).is_file())
        .collect();
    dirs.sort();
    dirs
}

async fn clean_cluster_dir(dir: &Path, cancel: &CancellationToken) -> Leftover {
    let what = format!("cluster dir {}", dir.display());
    let Some(marker) = Marker::read(dir) else {
        return Leftover { what, outcome: Outcome::Kept("its marker file cannot be read".into()) };
    };
    if crate::sys::process::process_alive(marker.pid) {
        return Leftover { what, outcome: Outcome::Kept(format!("in use by a running rehearse (pid {})", marker.pid)) };
    }
    if dir.join("data/postmaster.pid").exists() {
        if let Err(why) = stop_server(dir, &marker, cancel).await {
            return Leftover { what, outcome: Outcome::Failed(why) };
        }
    }
    let outcome = match crate::sys::tree::remove_tree(dir) {
        Ok(()) => Outcome::Removed,
        Err(e) => Outcome::Failed(format!("cannot delete it ({e}): delete it with `rm -rf {}`", dir.display())),
    };
    Leftover { what, outcome }
}

/// `pg_ctl stop -m immediate`: the data is throwaway, so no checkpoint is owed.
/// A stale postmaster.pid (the server died too) is no reason to keep the dir.
async fn stop_server(dir: &Path, marker: &Marker, cancel: &CancellationToken) -> Result<(), String> {
    let bin_dir = match &marker.bin {
        Some(bin) if bin.join("pg_ctl").is_file() => bin.clone(),
        _ => local::find_binaries(None, cancel).await.map_err(|e| e.with_causes())?.dir,
    };
    let run_as = local::server_user().map_err(|e| e.with_causes())?;
    let data = dir.join("data");
    let result = ChildCommand::new(bin_dir.join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .args(["-m", "immediate", "-w", "-t", "30", "stop"])
        .cwd(dir)
        .run_as(run_as.as_ref())
        .deadline(Duration::from_secs(60))
        .run(cancel)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.stderr().is_some_and(|s| s.contains("No such process") || s.contains("is not running")) => Ok(()),
        Err(e) => Err(format!(
            "cannot stop its server ({e}): stop it with `pg_ctl -D {} -m immediate stop`, then delete the dir",
            data.display()
        )),
    }
}

/// A clone a crashed run left: destroyed as the run would have, unless its run is alive.
async fn clean_clone(path: &Path) -> Leftover {
    let Some(marker) = clone::Marker::read(path) else {
        let what = format!("clone marker {}", path.display());
        return Leftover { what, outcome: Outcome::Kept("it cannot be read as a clone marker".into()) };
    };
    let what = format!("clone {} (marker {})", marker.id(), path.display());
    if let Some(why) = still_owned(marker.pid, &marker.host) {
        return Leftover { what, outcome: Outcome::Kept(why) };
    }
    if !marker.made() {
        // Nothing to give destroy: say what may exist, once.
        let _ = std::fs::remove_file(path);
        let why = format!(
            "its run was killed or interrupted while postgres.clone.create ran, before it printed a URL or an \
             id: if create made a clone, it is named {} (REHEARSE_CLONE_NAME); remove it with the engine's own tools",
            marker.name
        );
        return Leftover { what, outcome: Outcome::Failed(why) };
    }
    let outcome = match clone::destroy(&marker, path).await {
        Ok(()) => Outcome::Removed,
        Err(e) => Outcome::Failed(e.with_causes()),
    };
    Leftover { what, outcome }
}

async fn clean_container(c: &LabelledContainer, cancel: &CancellationToken) -> Leftover {
    let what = format!("container {} ({})", &c.id[..c.id.len().min(12)], c.status);
    let outcome = match c.pid.and_then(|pid| still_owned(pid, &c.host)) {
        Some(why) => Outcome::Kept(why),
        None => match docker::remove_container(&c.id, cancel).await {
            Ok(()) => Outcome::Removed,
            Err(e) => Outcome::Failed(e.with_causes()),
        },
    };
    Leftover { what, outcome }
}

/// Why a leftover of (`pid`, `host`) must be left alone, if it must.
fn still_owned(pid: u32, host: &str) -> Option<String> {
    let here = docker::hostname();
    if host != here {
        return Some(format!("started from host `{host}`, not this one (`{here}`): run `rehearse cleanup` there"));
    }
    crate::sys::process::process_alive(pid).then(|| format!("in use by a running rehearse (pid {pid})"))
}

/// (pid, host) from a database comment `rehearse pid=123 host=ci-7`.
fn owner_from_comment(comment: &str) -> Option<(u32, String)> {
    let rest = comment.strip_prefix("rehearse ")?;
    let field = |key: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='));
    Some((field("pid")?.parse().ok()?, field("host")?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_from_database_comments() {
        assert_eq!(owner_from_comment("rehearse pid=42 host=ci-7"), Some((42, "ci-7".into())));
        assert_eq!(owner_from_comment("someone else's"), None);
    }
}
