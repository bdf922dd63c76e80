//! Production's size statistics (`rehearse.stats/v1`): what `rehearse stats`
//! reads from production's catalog and writes as JSON, and what an estimate
//! scales the rehearsal by. Sizes only: no row data leaves production.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::catalog::RelationStats;
use crate::error::{Error, Result};
use crate::sys::json::{read_versioned, Refusal};

pub const STATS_SCHEMA: &str = "rehearse.stats/v1";

/// The settings that drive how fast DDL runs, read with the statistics.
pub const DDL_SETTINGS: [&str; 4] =
    ["maintenance_work_mem", "max_parallel_maintenance_workers", "work_mem", "shared_buffers"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductionStats {
    /// Always `rehearse.stats/v1`.
    pub schema: String,
    /// When they were read (RFC 3339, UTC).
    pub taken_at: String,
    /// `server_version` of the server they were read from, e.g. "15.18".
    pub server_version: String,
    /// The database they describe.
    pub database: String,
    /// Whether they were read on a hot standby.
    #[serde(default)]
    pub in_recovery: bool,
    /// The settings of [`DDL_SETTINGS`], as the server shows them.
    pub settings: BTreeMap<String, String>,
    /// Every table, index, materialized view and TOAST table.
    pub relations: Vec<RelationStats>,
}

impl ProductionStats {
    /// Reads and checks a stats file; anything but a `rehearse.stats/v1`
    /// file with its relations is bad input naming the file.
    pub fn load(path: &Path) -> Result<ProductionStats> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::bad_input_because(
                format!(
                    "cannot read production statistics {shown}: make them with `rehearse stats --url URL --out FILE` \
                     and point estimate.production at that file"
                ),
                e,
            )
        })?;
        let stats: ProductionStats = read_versioned(&text, STATS_SCHEMA, |refusal| match refusal {
            Refusal::NotJson => {
                format!("production statistics {shown} are not JSON: make them again with `rehearse stats`")
            }
            Refusal::OtherSchema(other) => format!(
                "{shown} is not {STATS_SCHEMA} (its schema is {}): make it with this version's `rehearse stats`",
                other.map(|s| format!("`{s}`")).unwrap_or_else(|| "missing".into())
            ),
            Refusal::Incomplete => format!(
                "production statistics {shown} lack what an estimate needs: make them again with `rehearse stats`"
            ),
        })?;
        if stats.relations.is_empty() {
            return Err(Error::bad_input(format!(
                "production statistics {shown} list no relations: were they read from the right database?"
            )));
        }
        Ok(stats)
    }

    /// A relation by its `schema.name`.
    pub fn relation(&self, name: &str) -> Option<&RelationStats> {
        self.relations.iter().find(|r| r.relation == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_and_incomplete_files_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let p = dir.path().join("stats.json");
            std::fs::write(&p, text).unwrap();
            p
        };
        let check = |text: &str, expected: &str| {
            let err = ProductionStats::load(&write(text)).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
            assert!(err.render().contains(expected), "{}", err.render());
        };
        check(r#"{"schema": "rehearse.stats/v2"}"#, "is not rehearse.stats/v1 (its schema is `rehearse.stats/v2`)");
        check(r#"{"schema": "rehearse.report/v1"}"#, "its schema is `rehearse.report/v1`");
        check(
            r#"{"schema": "rehearse.stats/v1", "taken_at": "x", "server_version": "15", "database": "d", "settings": {}}"#,
            "relations",
        );
        check("not json", "are not JSON");
        assert!(ProductionStats::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .render()
            .contains("rehearse stats"));
    }
}
