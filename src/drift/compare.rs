//! Production's schema against the history's, entry by entry: what only
//! one side has, what both define differently, what only a name tells
//! apart; the children of a missing object folded into its finding.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::likely::likely;
use super::Ignore;
use crate::catalog::{SchemaEntry, SchemaEntryKind};
use crate::pg::DriftKind;
use crate::report::{DriftCause, DriftFinding};

/// What [`compare`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// Production's objects per kind (`tables`, `columns`, ...), every kind listed.
    pub checked: BTreeMap<String, usize>,
    /// Sorted by cause, then kind, then object; `revision` left for the stage.
    pub findings: Vec<DriftFinding>,
}

/// One differing entry, before folding.
#[derive(Debug, Clone, Copy)]
enum Difference<'a> {
    OnlyInProduction(&'a SchemaEntry),
    OnlyInHistory(&'a SchemaEntry),
    /// Both have it; the definitions differ.
    Different(&'a SchemaEntry, &'a SchemaEntry),
    /// Both have it, defined alike, under another name (index, constraint).
    Renamed(&'a SchemaEntry, &'a SchemaEntry),
}

impl<'a> Difference<'a> {
    fn cause(self) -> DriftCause {
        match self {
            Difference::OnlyInProduction(_) => DriftCause::OnlyInProduction,
            Difference::OnlyInHistory(_) => DriftCause::OnlyInHistory,
            Difference::Different(..) | Difference::Renamed(..) => DriftCause::Different,
        }
    }

    /// The entry the finding names: the history's where it has one, so a
    /// finding's object is what [`changed_keys`] gives for the history build.
    fn entry(self) -> &'a SchemaEntry {
        match self {
            Difference::OnlyInProduction(e) | Difference::OnlyInHistory(e) => e,
            Difference::Different(_, h) | Difference::Renamed(_, h) => h,
        }
    }

    fn kind(self) -> DriftKind {
        match self {
            Difference::Renamed(_, h) => h.kind.name_kind().unwrap_or(h.kind.into()),
            other => other.entry().kind.into(),
        }
    }
}

/// Compares production (plus the release) with the history built from
/// empty. One finding per differing entry; an object missing on one side
/// carries its missing children (a table's columns, indexes, constraints;
/// a partitioned index's partitions' indexes), and a name finding the
/// same renaming of its partitions' copies.
pub fn compare(production: &[SchemaEntry], history: &[SchemaEntry], ignore: &Ignore) -> Comparison {
    let mut checked: BTreeMap<String, usize> =
        SchemaEntryKind::ALL.iter().map(|k| (k.plural().to_string(), 0)).collect();
    for entry in production {
        *checked.entry(entry.kind.plural().to_string()).or_default() += 1;
    }
    let differences = differences(production, history);
    let parents = parents(production, history);
    let folded = fold(&differences, &parents);
    let mut findings: Vec<DriftFinding> = differences
        .iter()
        .zip(&folded)
        .filter_map(|(difference, fold)| match fold {
            Fold::Folded => None,
            Fold::Top(children) => Some(finding(*difference, children)),
        })
        .filter(|f| !ignore.matches(f))
        .collect();
    findings.sort_by(|a, b| (a.cause, a.kind, &a.object).cmp(&(b.cause, b.kind, &b.object)));
    Comparison { checked, findings }
}

/// Objects added or altered from `before` to `after` (two snapshots of the
/// history build, around one revision), as (kind, object) the way a
/// finding about them names them; an index or constraint also under its
/// name kind (`index name`), so a name finding finds its revision too.
pub fn changed_keys(before: &[SchemaEntry], after: &[SchemaEntry]) -> Vec<(DriftKind, String)> {
    let before: HashSet<&SchemaEntry> = before.iter().collect();
    let mut keys = Vec::new();
    for entry in after.iter().filter(|e| !before.contains(e)) {
        keys.push((entry.kind.into(), entry.object().to_string()));
        if let Some(name_kind) = entry.kind.name_kind() {
            keys.push((name_kind, entry.object().to_string()));
        }
    }
    let mut seen = HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    keys
}

/// Entries matched by (kind, key); within one key (twin indexes), same
/// labels first, then the rest in order. Unmatched entries with a label
/// that the other side has under another key are one object redefined.
fn differences<'a>(production: &'a [SchemaEntry], history: &'a [SchemaEntry]) -> Vec<Difference<'a>> {
    type Sides<'a> = (Vec<&'a SchemaEntry>, Vec<&'a SchemaEntry>);
    let mut groups: BTreeMap<(SchemaEntryKind, &str), Sides<'a>> = BTreeMap::new();
    for entry in production {
        groups.entry((entry.kind, &entry.name)).or_default().0.push(entry);
    }
    for entry in history {
        groups.entry((entry.kind, &entry.name)).or_default().1.push(entry);
    }
    let mut differences = Vec::new();
    let (mut only_production, mut only_history) = (Vec::new(), Vec::new());
    for (_, (mut prod, mut hist)) in groups {
        let mut pairs = Vec::new();
        prod.retain(|p| match hist.iter().position(|h| h.label == p.label) {
            Some(i) => {
                pairs.push((*p, hist.remove(i)));
                false
            }
            None => true,
        });
        let leftover = prod.len().min(hist.len());
        pairs.extend(prod.drain(..leftover).zip(hist.drain(..leftover)));
        for (p, h) in pairs {
            if p.definition != h.definition {
                differences.push(Difference::Different(p, h));
            } else if p.label != h.label {
                differences.push(Difference::Renamed(p, h));
            }
        }
        only_production.extend(prod);
        only_history.extend(hist);
    }
    for p in only_production {
        let redefined = only_history.iter().position(|h| h.kind == p.kind && h.label.is_some() && h.label == p.label);
        match redefined {
            Some(i) => differences.push(Difference::Different(p, only_history.remove(i))),
            None => differences.push(Difference::OnlyInProduction(p)),
        }
    }
    differences.extend(only_history.into_iter().map(Difference::OnlyInHistory));
    differences
}

type Key<'a> = (SchemaEntryKind, &'a str);

/// Each entry's parent, from both sides (production's first).
fn parents<'a>(production: &'a [SchemaEntry], history: &'a [SchemaEntry]) -> HashMap<Key<'a>, Key<'a>> {
    let mut parents = HashMap::new();
    for entry in production.iter().chain(history) {
        if let Some((kind, name)) = &entry.parent {
            parents.entry((entry.kind, entry.name.as_str())).or_insert((*kind, name.as_str()));
        }
    }
    parents
}

/// Whether a difference is a finding of its own (with the children folded
/// into it, counted by kind) or folded into an ancestor's.
enum Fold {
    Top(BTreeMap<SchemaEntryKind, usize>),
    Folded,
}

/// Folds each difference into its topmost ancestor missing on the same
/// side, and a name difference into its topmost ancestor's name
/// difference of the same kind (a partition's constraint renamed with its
/// parent's). Two objects defined differently stay two findings.
fn fold(differences: &[Difference], parents: &HashMap<Key, Key>) -> Vec<Fold> {
    let mut by_key: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, d) in differences.iter().enumerate() {
        by_key.entry((d.entry().kind, d.entry().name.as_str())).or_default().push(i);
    }
    let mut folds: Vec<Fold> = differences.iter().map(|_| Fold::Top(BTreeMap::new())).collect();
    for (i, d) in differences.iter().enumerate() {
        let folds_into = |j: &usize| match (differences[*j], d) {
            (Difference::Renamed(..), Difference::Renamed(..)) => differences[*j].kind() == d.kind(),
            (Difference::Different(..) | Difference::Renamed(..), _) => false,
            (ancestor, _) => ancestor.cause() == d.cause(),
        };
        let mut top = None;
        let mut key = (d.entry().kind, d.entry().name.as_str());
        // Parents never loop in a catalog; the bound only guards against a malformed snapshot.
        for _ in 0..16 {
            let Some(parent) = parents.get(&key) else { break };
            if let Some(j) = by_key.get(parent).and_then(|js| js.iter().find(|j| folds_into(j))) {
                top = Some(*j);
            }
            key = *parent;
        }
        if let Some(j) = top {
            folds[i] = Fold::Folded;
            if let Fold::Top(children) = &mut folds[j] {
                *children.entry(d.entry().kind).or_default() += 1;
            }
        }
    }
    folds
}

fn finding(difference: Difference, children: &BTreeMap<SchemaEntryKind, usize>) -> DriftFinding {
    let (production, history) = match difference {
        Difference::OnlyInProduction(p) => (Some(p.definition.clone()), None),
        Difference::OnlyInHistory(h) => (None, Some(h.definition.clone())),
        Difference::Different(p, h) => (Some(p.definition.clone()), Some(h.definition.clone())),
        Difference::Renamed(p, h) => (Some(p.object().to_string()), Some(h.object().to_string())),
    };
    let cause = difference.cause();
    let mut likely = likely(cause, difference.kind(), production.as_deref(), history.as_deref());
    if let Some(covers) = children_text(children) {
        likely.push_str(&format!("; this finding covers its {covers}"));
    }
    DriftFinding {
        object: difference.entry().object().to_string(),
        kind: difference.kind(),
        production,
        history,
        cause,
        likely,
        revision: None,
    }
}

/// `3 columns, 1 index and 2 constraints`; owners and privileges go
/// without saying.
fn children_text(children: &BTreeMap<SchemaEntryKind, usize>) -> Option<String> {
    let parts: Vec<String> = children
        .iter()
        .filter(|(kind, _)| !matches!(kind, SchemaEntryKind::Owner | SchemaEntryKind::Privileges))
        .map(|(kind, n)| format!("{n} {}", if *n == 1 { kind.as_str() } else { kind.plural() }))
        .collect();
    match parts.split_last() {
        None => None,
        Some((last, [])) => Some(last.clone()),
        Some((last, rest)) => Some(format!("{} and {last}", rest.join(", "))),
    }
}
