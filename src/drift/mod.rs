//! STUB until the drift-compare branch lands (same API).
use std::collections::BTreeMap;

use crate::catalog::SchemaEntry;
use crate::report::DriftFinding;

#[derive(Debug, Clone, Default)]
pub struct Ignore;

impl Ignore {
    pub fn parse(_: &[String]) -> Result<Ignore, String> {
        Ok(Ignore)
    }
}

pub struct Comparison {
    pub checked: BTreeMap<String, usize>,
    pub findings: Vec<DriftFinding>,
}

pub fn compare(_: &[SchemaEntry], _: &[SchemaEntry], _: &Ignore) -> Comparison {
    Comparison { checked: BTreeMap::new(), findings: Vec::new() }
}

pub fn changed_keys(_: &[SchemaEntry], _: &[SchemaEntry]) -> Vec<(String, String)> {
    Vec::new()
}
