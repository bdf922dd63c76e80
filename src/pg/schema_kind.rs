//! What kind of schema object: the kinds the drift check reads from the
//! catalogs ([`SchemaEntryKind`]), and the kinds its findings are of
//! ([`DriftKind`]: those, and a difference in an index's or constraint's
//! name alone).

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

closed_set! {
    /// What kind of object a schema entry (`catalog::SchemaEntry`) is, as
    /// drift findings name it. The order is the one a finding lists the
    /// children it covers in.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum SchemaEntryKind {
        Schema = "schema",
        Extension = "extension",
        Table = "table",
        Column = "column",
        Constraint = "constraint",
        Index = "index",
        Sequence = "sequence",
        View = "view",
        MaterializedView = "materialized view",
        /// Functions and procedures (`pg_proc.prokind` f, p, w; aggregates left out).
        Function = "function",
        Trigger = "trigger",
        Enum = "enum",
        Domain = "domain",
        /// A relation's owner.
        Owner = "owner",
        /// A relation's privileges (`relacl`).
        Privileges = "privileges",
    }
}

impl SchemaEntryKind {
    /// The kind as the report's `checked` counts spell it: `tables`, `indexes`.
    pub fn plural(self) -> &'static str {
        match self {
            SchemaEntryKind::Schema => "schemas",
            SchemaEntryKind::Extension => "extensions",
            SchemaEntryKind::Table => "tables",
            SchemaEntryKind::Column => "columns",
            SchemaEntryKind::Constraint => "constraints",
            SchemaEntryKind::Index => "indexes",
            SchemaEntryKind::Sequence => "sequences",
            SchemaEntryKind::View => "views",
            SchemaEntryKind::MaterializedView => "materialized views",
            SchemaEntryKind::Function => "functions",
            SchemaEntryKind::Trigger => "triggers",
            SchemaEntryKind::Enum => "enums",
            SchemaEntryKind::Domain => "domains",
            SchemaEntryKind::Owner => "owners",
            SchemaEntryKind::Privileges => "privileges",
        }
    }

    /// The finding kind of a difference in name only (`index name`,
    /// `constraint name`), for the kinds keyed by definition.
    pub fn name_kind(self) -> Option<DriftKind> {
        match self {
            SchemaEntryKind::Index => Some(DriftKind::IndexName),
            SchemaEntryKind::Constraint => Some(DriftKind::ConstraintName),
            _ => None,
        }
    }
}

closed_set! {
    /// What a drift finding is about (the report's `drift.findings[].kind`):
    /// an object of an entry kind, or an index's or constraint's name alone.
    /// Declared in the order of their names, so findings sorted by kind are
    /// sorted by its name, as the report has always listed them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum DriftKind {
        Column = "column",
        Constraint = "constraint",
        ConstraintName = "constraint name",
        Domain = "domain",
        Enum = "enum",
        Extension = "extension",
        Function = "function",
        Index = "index",
        IndexName = "index name",
        MaterializedView = "materialized view",
        Owner = "owner",
        Privileges = "privileges",
        Schema = "schema",
        Sequence = "sequence",
        Table = "table",
        Trigger = "trigger",
        View = "view",
    }
}

impl DriftKind {
    /// For a name kind, the kind of the object it names: `index` for `index name`.
    pub fn name_of(self) -> Option<DriftKind> {
        match self {
            DriftKind::IndexName => Some(DriftKind::Index),
            DriftKind::ConstraintName => Some(DriftKind::Constraint),
            _ => None,
        }
    }
}

impl From<SchemaEntryKind> for DriftKind {
    fn from(kind: SchemaEntryKind) -> DriftKind {
        match kind {
            SchemaEntryKind::Schema => DriftKind::Schema,
            SchemaEntryKind::Extension => DriftKind::Extension,
            SchemaEntryKind::Table => DriftKind::Table,
            SchemaEntryKind::Column => DriftKind::Column,
            SchemaEntryKind::Constraint => DriftKind::Constraint,
            SchemaEntryKind::Index => DriftKind::Index,
            SchemaEntryKind::Sequence => DriftKind::Sequence,
            SchemaEntryKind::View => DriftKind::View,
            SchemaEntryKind::MaterializedView => DriftKind::MaterializedView,
            SchemaEntryKind::Function => DriftKind::Function,
            SchemaEntryKind::Trigger => DriftKind::Trigger,
            SchemaEntryKind::Enum => DriftKind::Enum,
            SchemaEntryKind::Domain => DriftKind::Domain,
            SchemaEntryKind::Owner => DriftKind::Owner,
            SchemaEntryKind::Privileges => DriftKind::Privileges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::assert_serde_spells_as_str;

    #[test]
    fn kinds_spell_as_findings_name_them() {
        assert_serde_spells_as_str(&SchemaEntryKind::ALL, SchemaEntryKind::as_str);
        assert_serde_spells_as_str(&DriftKind::ALL, DriftKind::as_str);
        for kind in SchemaEntryKind::ALL {
            assert_eq!(DriftKind::from(kind).as_str(), kind.as_str());
            if let Some(name) = kind.name_kind() {
                assert_eq!(name.as_str(), format!("{kind} name"));
                assert_eq!(name.name_of(), Some(DriftKind::from(kind)));
            }
        }
        let named = SchemaEntryKind::ALL.iter().filter_map(|k| k.name_kind()).count();
        assert_eq!(
            DriftKind::ALL.len(),
            SchemaEntryKind::ALL.len() + named,
            "every finding kind is an entry's or a name's"
        );
    }

    /// Findings are sorted by kind; the report has always listed them by the kind's name.
    #[test]
    fn drift_kinds_are_ordered_as_their_names() {
        for pair in DriftKind::ALL.windows(2) {
            assert!(pair[0] < pair[1] && pair[0].as_str() < pair[1].as_str(), "{pair:?}");
        }
    }
}
