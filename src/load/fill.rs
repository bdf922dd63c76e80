//! STAND-IN until the `load-input` branch merges (parameters sampled from the copy).
use tokio_postgres::Client;

use super::workload::Workload;
use crate::error::{ErrorKind, Result};

pub struct Replayable {
    pub sql: String,
    pub line: usize,
    pub rate: Option<f64>,
    pub tables: Vec<String>,
    pub writes: bool,
}

impl Replayable {
    pub fn render(&self, _rng: &mut impl rand::Rng) -> String {
        self.sql.clone()
    }
}

pub struct NotReplayed {
    pub sql: String,
    pub line: usize,
    pub reason: String,
}

pub async fn prepare(client: &Client, workload: &Workload) -> Result<(Vec<Replayable>, Vec<NotReplayed>)> {
    let (mut ok, mut not) = (Vec::new(), Vec::new());
    for s in &workload.statements {
        if s.sql.contains('$') {
            not.push(NotReplayed { sql: s.sql.clone(), line: s.line, reason: "has parameters".into() });
            continue;
        }
        let parsed = pg_query::parse(&s.sql, 0).map_err(|e| ErrorKind::ScenarioInvalid.error(e.to_string()))?;
        let mut tables = Vec::new();
        for t in parsed.tables() {
            let c = crate::catalog::canonical_name(client, &t)
                .await
                .map_err(|e| ErrorKind::CatalogReadFailed.because("table", e))?;
            tables.extend(c);
        }
        let writes = !parsed.dml_tables().is_empty();
        ok.push(Replayable { sql: s.sql.clone(), line: s.line, rate: s.rate, tables, writes });
    }
    Ok((ok, not))
}
