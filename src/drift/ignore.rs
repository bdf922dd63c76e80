//! The scenario's `drift.ignore`: findings the team accepts, by kind and
//! object glob (`index:public.legacy_*`, `column:public.orders.note`) or
//! by a whole kind (`privileges`).

use crate::pg::{DriftKind, SchemaEntryKind};
use crate::report::DriftFinding;

/// Findings to leave out of the drift report.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<IgnoreRule>,
}

#[derive(Debug, Clone)]
struct IgnoreRule {
    kind: DriftKind,
    /// None: every object of the kind.
    object: Option<glob::Pattern>,
}

impl Ignore {
    /// Parses `kind:glob` or a bare `kind` per item. A kind also covers
    /// its name findings: `index:public.legacy_*` leaves out an index's
    /// `index name` finding too; `index name` alone leaves out only those.
    pub fn parse(patterns: &[String]) -> Result<Ignore, String> {
        patterns.iter().map(|p| parse_rule(p)).collect::<Result<_, _>>().map(|rules| Ignore { rules })
    }

    /// Whether `finding` is one the scenario ignores.
    pub fn matches(&self, finding: &DriftFinding) -> bool {
        self.rules.iter().any(|rule| {
            let kind_matches = finding.kind == rule.kind || finding.kind.name_of() == Some(rule.kind);
            kind_matches && rule.object.as_ref().is_none_or(|glob| glob.matches(&finding.object))
        })
    }
}

/// Every kind a pattern may name: the entry kinds, then the name kinds.
fn known_kinds() -> Vec<DriftKind> {
    let entries = SchemaEntryKind::ALL.into_iter().map(DriftKind::from);
    entries.chain(SchemaEntryKind::ALL.into_iter().filter_map(SchemaEntryKind::name_kind)).collect()
}

fn parse_rule(pattern: &str) -> Result<IgnoreRule, String> {
    // Kinds hold no ':', objects may (`public.orders: orders_total_check`): split at the first.
    let (kind, object) = match pattern.split_once(':') {
        Some((kind, object)) => (kind.trim(), Some(object.trim())),
        None => (pattern.trim(), None),
    };
    let known = known_kinds();
    let Some(kind) = known.iter().copied().find(|k| k.as_str() == kind) else {
        let names: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
        return Err(format!("drift.ignore {pattern:?}: unknown kind {kind:?}; the kinds are {}", names.join(", ")));
    };
    let object = match object {
        None => None,
        Some("") => {
            return Err(format!(
                "drift.ignore {pattern:?}: no object after ':'; write {:?} alone to ignore every {kind}",
                kind.as_str()
            ))
        }
        Some(glob) => {
            Some(glob::Pattern::new(glob).map_err(|e| format!("drift.ignore {pattern:?}: bad pattern {glob:?}: {e}"))?)
        }
    };
    Ok(IgnoreRule { kind, object })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::DriftCause;

    fn finding(kind: &str, object: &str) -> DriftFinding {
        let kind = DriftKind::from_name(kind).unwrap();
        DriftFinding {
            object: object.into(),
            kind,
            production: None,
            history: None,
            cause: DriftCause::Different,
            likely: String::new(),
            revision: None,
        }
    }

    fn ignore(patterns: &[&str]) -> Ignore {
        Ignore::parse(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_kind_and_glob_ignores_matching_objects_of_that_kind_only() {
        let ignore = ignore(&["index:public.legacy_*"]);
        assert!(ignore.matches(&finding("index", "public.legacy_orders_idx")));
        assert!(ignore.matches(&finding("index name", "public.legacy_orders_idx")));
        assert!(!ignore.matches(&finding("index", "public.orders_idx")));
        assert!(!ignore.matches(&finding("table", "public.legacy_orders")));
    }

    #[test]
    fn a_bare_kind_ignores_the_whole_kind() {
        let ignore = ignore(&["privileges", "column:public.orders.note"]);
        assert!(ignore.matches(&finding("privileges", "public.orders")));
        assert!(ignore.matches(&finding("column", "public.orders.note")));
        assert!(!ignore.matches(&finding("column", "public.orders.notes")));
        assert!(!ignore.matches(&finding("owner", "public.orders")));
    }

    #[test]
    fn kinds_with_spaces_and_objects_with_colons_parse() {
        let ignore = ignore(&["constraint name:public.orders: *_check", "materialized view"]);
        assert!(ignore.matches(&finding("constraint name", "public.orders: orders_total_check")));
        assert!(!ignore.matches(&finding("constraint", "public.orders: orders_total_check")));
        assert!(ignore.matches(&finding("materialized view", "public.order_days")));
    }

    #[test]
    fn nothing_is_ignored_by_default() {
        assert!(!Ignore::default().matches(&finding("index", "public.x")));
    }

    #[test]
    fn an_unknown_kind_is_refused_with_the_kinds_listed() {
        let error = Ignore::parse(&["indexes:public.x".into()]).unwrap_err();
        assert!(error.contains("unknown kind \"indexes\""), "{error}");
        assert!(error.contains("index, sequence"), "{error}");
        assert!(error.contains("constraint name"), "{error}");
    }

    #[test]
    fn a_bad_glob_or_an_empty_object_is_refused() {
        let error = Ignore::parse(&["index:public.[x".into()]).unwrap_err();
        assert!(error.contains("bad pattern \"public.[x\""), "{error}");
        let error = Ignore::parse(&["index:".into()]).unwrap_err();
        assert!(error.contains("no object after ':'; write \"index\" alone to ignore every index"), "{error}");
    }
}
