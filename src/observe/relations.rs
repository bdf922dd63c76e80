//! Relation snapshots before and after a migration: a changed relfilenode is
//! a rewrite (ALTER TYPE, volatile defaults, VACUUM FULL, CLUSTER, TRUNCATE,
//! REINDEX); a size change over 10% is reported too.

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::catalog::{self, RelationRow};
use crate::pg::RelationKind;
use crate::report::Rewrite;

/// Size changes smaller than this are noise (one page), whatever the ratio.
const MIN_SIZE_CHANGE: i64 = 8192;

#[derive(Debug, Clone, Default)]
pub struct RelationSnapshot {
    by_oid: HashMap<i64, RelationRow>,
}

impl RelationSnapshot {
    pub async fn take(client: &Client) -> Result<RelationSnapshot, tokio_postgres::Error> {
        let rows = catalog::relations(client).await?;
        Ok(RelationSnapshot { by_oid: rows.into_iter().map(|r| (r.oid, r)).collect() })
    }

    /// Relations in `self` that `before` does not have, by name, sorted.
    pub fn added_since(&self, before: &RelationSnapshot) -> Vec<(String, RelationKind)> {
        let mut added: Vec<(String, RelationKind)> =
            self.by_oid.values().filter(|r| !before.contains(&r.name)).map(|r| (r.name.clone(), r.kind)).collect();
        added.sort();
        added
    }

    /// Whether a relation of that name existed.
    pub fn contains(&self, name: &str) -> bool {
        self.by_oid.values().any(|r| r.name == name)
    }

    pub fn by_oid(&self, oid: i64) -> Option<&RelationRow> {
        self.by_oid.get(&oid)
    }

    pub fn get(&self, name: &str) -> Option<&RelationRow> {
        self.by_oid.values().find(|r| r.name == name)
    }
}

/// (rewrites, other size changes over 10%) between two snapshots.
pub fn compare(before: &RelationSnapshot, after: &RelationSnapshot) -> (Vec<Rewrite>, Vec<Rewrite>) {
    let mut rewrites = Vec::new();
    let mut changes = Vec::new();
    for (oid, b) in &before.by_oid {
        let Some(a) = after.by_oid.get(oid) else { continue };
        let entry = Rewrite { relation: a.name.clone(), kind: a.kind, bytes_before: b.bytes, bytes_after: a.bytes };
        if a.relfilenode != b.relfilenode {
            rewrites.push(entry);
        } else {
            let delta = (a.bytes - b.bytes).abs();
            if delta >= MIN_SIZE_CHANGE && delta * 10 > b.bytes {
                changes.push(entry);
            }
        }
    }
    rewrites.sort_by(|x, y| y.bytes_before.cmp(&x.bytes_before).then(x.relation.cmp(&y.relation)));
    changes.sort_by(|x, y| y.bytes_after.cmp(&x.bytes_after).then(x.relation.cmp(&y.relation)));
    (rewrites, changes)
}
