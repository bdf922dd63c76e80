//! STAND-IN until the `load-input` branch merges (the workload file's two formats).
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, Result};

#[derive(Debug)]
pub struct Workload {
    pub path: PathBuf,
    pub statements: Vec<WorkloadStatement>,
    pub has_rates: bool,
}

#[derive(Debug)]
pub struct WorkloadStatement {
    pub sql: String,
    pub line: usize,
    pub rate: Option<f64>,
    pub mean_ms: Option<f64>,
}

pub fn load(path: &Path) -> Result<Workload> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ErrorKind::ScenarioInvalid.because(format!("cannot read load.queries {}", path.display()), e))?;
    let mut statements = Vec::new();
    let (mut rate, mut sql, mut start) = (None, String::new(), 0);
    for (i, line) in text.lines().enumerate() {
        if let Some(r) = line.trim().strip_prefix("-- rate:") {
            rate = r.trim().trim_end_matches("/s").parse().ok();
            continue;
        }
        if line.trim_start().starts_with("--") || line.trim().is_empty() {
            continue;
        }
        if sql.is_empty() {
            start = i + 1;
        }
        sql.push_str(line);
        sql.push('\n');
        if line.trim_end().ends_with(';') {
            let s = sql.trim().trim_end_matches(';').to_string();
            statements.push(WorkloadStatement { sql: s, line: start, rate: rate.take(), mean_ms: None });
            sql.clear();
        }
    }
    let has_rates = !statements.is_empty() && statements.iter().all(|s| s.rate.is_some());
    Ok(Workload { path: path.to_path_buf(), statements, has_rates })
}
