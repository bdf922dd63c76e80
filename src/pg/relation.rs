//! What kind of relation a lock, rewrite or size is about: `pg_class.relkind` in words.

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

closed_set! {
    /// `pg_class.relkind`, spelled in JSON as the report always has (`table`,
    /// `materialized view`, ...). `Relation` stands for a kind rehearse does not
    /// name (or a relation it could no longer look up).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
    pub enum RelationKind {
        Table = "table",
        Index = "index",
        Sequence = "sequence",
        View = "view",
        MaterializedView = "materialized view",
        PartitionedTable = "partitioned table",
        PartitionedIndex = "partitioned index",
        ForeignTable = "foreign table",
        ToastTable = "toast table",
        CompositeType = "composite type",
        #[default]
        Relation = "relation",
    }
}

impl RelationKind {
    /// From `pg_class.relkind` (a one-letter code).
    pub fn from_relkind(relkind: &str) -> RelationKind {
        match relkind {
            "r" => RelationKind::Table,
            "i" => RelationKind::Index,
            "S" => RelationKind::Sequence,
            "v" => RelationKind::View,
            "m" => RelationKind::MaterializedView,
            "p" => RelationKind::PartitionedTable,
            "I" => RelationKind::PartitionedIndex,
            "f" => RelationKind::ForeignTable,
            "t" => RelationKind::ToastTable,
            "c" => RelationKind::CompositeType,
            _ => RelationKind::Relation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_spells_kinds_in_words() {
        for code in ["r", "i", "S", "v", "m", "p", "I", "f", "t", "c", "?"] {
            let kind = RelationKind::from_relkind(code);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(RelationKind::from_relkind("m").as_str(), "materialized view");
        crate::kinds::assert_serde_spells_as_str(&RelationKind::ALL, RelationKind::as_str);
    }
}
