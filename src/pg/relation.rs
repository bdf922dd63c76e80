//! What kind of relation a lock, rewrite or size is about: `pg_class.relkind` in words.

use serde::{Deserialize, Serialize};

/// `pg_class.relkind`, spelled in JSON as the report always has (`table`,
/// `materialized view`, ...). `Relation` stands for a kind rehearse does not
/// name (or a relation it could no longer look up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum RelationKind {
    #[serde(rename = "table")]
    Table,
    #[serde(rename = "index")]
    Index,
    #[serde(rename = "sequence")]
    Sequence,
    #[serde(rename = "view")]
    View,
    #[serde(rename = "materialized view")]
    MaterializedView,
    #[serde(rename = "partitioned table")]
    PartitionedTable,
    #[serde(rename = "partitioned index")]
    PartitionedIndex,
    #[serde(rename = "foreign table")]
    ForeignTable,
    #[serde(rename = "toast table")]
    ToastTable,
    #[serde(rename = "composite type")]
    CompositeType,
    #[default]
    #[serde(rename = "relation")]
    Relation,
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

    /// The kind in words, as the report spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::Table => "table",
            RelationKind::Index => "index",
            RelationKind::Sequence => "sequence",
            RelationKind::View => "view",
            RelationKind::MaterializedView => "materialized view",
            RelationKind::PartitionedTable => "partitioned table",
            RelationKind::PartitionedIndex => "partitioned index",
            RelationKind::ForeignTable => "foreign table",
            RelationKind::ToastTable => "toast table",
            RelationKind::CompositeType => "composite type",
            RelationKind::Relation => "relation",
        }
    }
}

impl std::fmt::Display for RelationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    }
}
