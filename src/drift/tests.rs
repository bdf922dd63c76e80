//! compare, changed_keys and the likely texts on hand-made snapshots.

use super::*;
use crate::catalog::{SchemaEntry, SchemaEntryKind};
use crate::pg::DriftKind;
use crate::report::DriftCause;

use SchemaEntryKind::*;

fn entry(kind: SchemaEntryKind, name: &str, definition: &str, parent: Option<(SchemaEntryKind, &str)>) -> SchemaEntry {
    SchemaEntry {
        kind,
        name: name.into(),
        definition: definition.into(),
        label: None,
        parent: parent.map(|(k, n)| (k, n.to_string())),
    }
}

fn labelled(kind: SchemaEntryKind, name: &str, label: &str, parent: (SchemaEntryKind, &str)) -> SchemaEntry {
    SchemaEntry { label: Some(label.into()), ..entry(kind, name, name.rsplit(": ").next().unwrap(), Some(parent)) }
}

/// A table with two columns, an index, a check constraint, owner and privileges.
fn orders() -> Vec<SchemaEntry> {
    let t = (Table, "public.orders");
    vec![
        entry(Schema, "public", "owner pg_database_owner", None),
        entry(Table, "public.orders", "permanent", Some((Schema, "public"))),
        entry(Column, "public.orders.id", "bigint NOT NULL", Some(t)),
        entry(Column, "public.orders.total", "numeric DEFAULT 0", Some(t)),
        entry(Column, "public.orders.note", "text", Some(t)),
        labelled(Index, "CREATE INDEX ON public.orders USING btree (total)", "public.orders_total_idx", t),
        labelled(Constraint, "public.orders: CHECK ((total >= 0))", "public.orders: orders_total_check", t),
        entry(Owner, "public.orders", "app", Some(t)),
        entry(Privileges, "public.orders", "(owner): SELECT", Some(t)),
    ]
}

fn findings(production: &[SchemaEntry], history: &[SchemaEntry]) -> Vec<(DriftCause, DriftKind, String)> {
    compare(production, history, &Ignore::default()).findings.into_iter().map(|f| (f.cause, f.kind, f.object)).collect()
}

fn found(cause: DriftCause, kind: DriftKind, object: &str) -> (DriftCause, DriftKind, String) {
    (cause, kind, object.into())
}

fn replace(entries: &mut [SchemaEntry], name: &str, change: impl Fn(&mut SchemaEntry)) {
    entries.iter_mut().filter(|e| e.name == name || e.label.as_deref() == Some(name)).for_each(change);
}

#[test]
fn identical_snapshots_give_no_findings_and_production_is_counted_by_kind() {
    let comparison = compare(&orders(), &orders(), &Ignore::default());
    assert_eq!(comparison.findings, vec![]);
    assert_eq!(comparison.checked["tables"], 1);
    assert_eq!(comparison.checked["columns"], 3);
    assert_eq!(comparison.checked["indexes"], 1);
    assert_eq!(comparison.checked["triggers"], 0, "every kind is listed");
    assert_eq!(comparison.checked.len(), SchemaEntryKind::ALL.len());
}

#[test]
fn an_index_added_by_hand_is_one_finding_with_its_partitions_copies_folded() {
    let history = orders();
    let mut production = orders();
    let parent = "CREATE INDEX ON ONLY public.orders USING btree (note)";
    production.push(labelled(Index, parent, "public.orders_note_idx", (Table, "public.orders")));
    for part in ["2024", "2025"] {
        let name = format!("CREATE INDEX ON public.orders_{part} USING btree (note)");
        production.push(labelled(Index, &name, &format!("public.orders_{part}_note_idx"), (Index, parent)));
    }
    let comparison = compare(&production, &history, &Ignore::default());
    assert_eq!(comparison.findings.len(), 1, "{:#?}", comparison.findings);
    let finding = &comparison.findings[0];
    assert_eq!(
        (finding.cause, finding.kind, finding.object.as_str()),
        (DriftCause::OnlyInProduction, DriftKind::Index, "public.orders_note_idx")
    );
    assert_eq!(finding.production.as_deref(), Some("CREATE INDEX ON ONLY public.orders USING btree (note)"));
    assert_eq!(finding.history, None);
    assert!(finding.likely.starts_with("an index added by hand in production (out of band)"), "{}", finding.likely);
    assert!(finding.likely.ends_with("covers its 2 indexes"), "{}", finding.likely);
    assert_eq!(finding.revision, None);
}

#[test]
fn a_column_default_changed_by_hand_is_one_different_column() {
    let mut production = orders();
    replace(&mut production, "public.orders.total", |e| e.definition = "numeric DEFAULT 1".into());
    let comparison = compare(&production, &orders(), &Ignore::default());
    let finding = &comparison.findings[0];
    assert_eq!(comparison.findings.len(), 1);
    assert_eq!((finding.cause, finding.kind), (DriftCause::Different, DriftKind::Column));
    assert_eq!(finding.object, "public.orders.total");
    assert_eq!(finding.production.as_deref(), Some("numeric DEFAULT 1"));
    assert_eq!(finding.history.as_deref(), Some("numeric DEFAULT 0"));
    assert!(finding.likely.contains("a manual fix in production"), "{}", finding.likely);
}

#[test]
fn a_table_missing_in_production_is_one_finding_covering_its_children() {
    let production: Vec<SchemaEntry> = orders().into_iter().filter(|e| e.kind == Schema).collect();
    let comparison = compare(&production, &orders(), &Ignore::default());
    assert_eq!(comparison.findings.len(), 1, "{:#?}", comparison.findings);
    let finding = &comparison.findings[0];
    assert_eq!((finding.cause, finding.kind), (DriftCause::OnlyInHistory, DriftKind::Table));
    assert_eq!(finding.object, "public.orders");
    assert_eq!(
        finding.likely,
        "a migration stamped but never run in production, or the table dropped out of band; \
         this finding covers its 3 columns, 1 constraint and 1 index"
    );
}

#[test]
fn a_constraint_renamed_by_hand_is_a_name_finding_and_its_partitions_copies_fold_into_it() {
    let key = "public.orders: CHECK ((total >= 0))";
    let part_key = "public.orders_2024: CHECK ((total >= 0))";
    let mut history = orders();
    history.push(entry(Table, "public.orders_2024", "permanent", Some((Table, "public.orders"))));
    history.push(labelled(Constraint, part_key, "public.orders_2024: orders_total_check", (Constraint, key)));
    let mut production = history.clone();
    replace(&mut production, key, |e| e.label = Some("public.orders: orders_total_positive".into()));
    replace(&mut production, part_key, |e| e.label = Some("public.orders_2024: orders_total_positive".into()));
    let comparison = compare(&production, &history, &Ignore::default());
    assert_eq!(comparison.findings.len(), 1, "{:#?}", comparison.findings);
    let finding = &comparison.findings[0];
    assert_eq!((finding.cause, finding.kind), (DriftCause::Different, DriftKind::ConstraintName));
    assert_eq!(finding.object, "public.orders: orders_total_check", "named as the history names it");
    assert_eq!(finding.production.as_deref(), Some("public.orders: orders_total_positive"));
    assert!(finding.likely.contains("RENAME CONSTRAINT") && finding.likely.ends_with("covers its 1 constraint"));
}

#[test]
fn an_index_redefined_under_its_name_is_one_different_index() {
    let mut production = orders();
    replace(&mut production, "public.orders_total_idx", |e| {
        e.name = "CREATE INDEX ON public.orders USING btree (total, id)".into();
        e.definition = e.name.clone();
    });
    assert_eq!(
        findings(&production, &orders()),
        vec![found(DriftCause::Different, DriftKind::Index, "public.orders_total_idx")]
    );
}

#[test]
fn twin_indexes_match_by_name_before_anything_else() {
    let t = (Table, "public.orders");
    let def = "CREATE INDEX ON public.orders USING btree (note)";
    let mut history = orders();
    history.push(labelled(Index, def, "public.orders_note_z", t));
    let mut production = history.clone();
    production.push(labelled(Index, def, "public.orders_note_a", t));
    assert_eq!(
        findings(&production, &history),
        vec![found(DriftCause::OnlyInProduction, DriftKind::Index, "public.orders_note_a")]
    );
}

#[test]
fn an_invalid_index_and_an_enum_label_say_what_happened() {
    let mut history = orders();
    history.push(entry(Enum, "public.mood", "'sad', 'ok'", Some((Schema, "public"))));
    let mut production = history.clone();
    replace(&mut production, "public.orders_total_idx", |e| e.definition.push_str(" INVALID"));
    replace(&mut production, "public.mood", |e| e.definition.push_str(", 'happy'"));
    let comparison = compare(&production, &history, &Ignore::default());
    let likely: Vec<(DriftKind, &str)> = comparison.findings.iter().map(|f| (f.kind, f.likely.as_str())).collect();
    assert_eq!(
        likely,
        vec![
            (DriftKind::Enum, "a label added out of band (ALTER TYPE ... ADD VALUE by hand in production)"),
            (DriftKind::Index, "a CREATE INDEX CONCURRENTLY that failed in production and left the index invalid"),
        ]
    );
    let comparison = compare(&history, &production, &Ignore::default());
    assert!(comparison.findings[0].likely.contains("ADD VALUE stamped but never run"), "{:?}", comparison.findings);
}

#[test]
fn findings_are_sorted_by_cause_then_kind_then_object_and_ignored_ones_left_out() {
    let mut history = orders();
    history.push(entry(Column, "public.orders.b", "text", Some((Table, "public.orders"))));
    let mut production = orders();
    production.push(entry(Column, "public.orders.z", "text", Some((Table, "public.orders"))));
    production.push(entry(Column, "public.orders.a", "text", Some((Table, "public.orders"))));
    replace(&mut production, "public.orders", |e| {
        if e.kind == Privileges {
            e.definition = "(owner): SELECT; PUBLIC: SELECT".into();
        }
    });
    replace(&mut production, "public.orders.note", |e| e.definition = "varchar(10)".into());
    let expected = vec![
        found(DriftCause::OnlyInProduction, DriftKind::Column, "public.orders.a"),
        found(DriftCause::OnlyInProduction, DriftKind::Column, "public.orders.z"),
        found(DriftCause::OnlyInHistory, DriftKind::Column, "public.orders.b"),
        found(DriftCause::Different, DriftKind::Column, "public.orders.note"),
        found(DriftCause::Different, DriftKind::Privileges, "public.orders"),
    ];
    assert_eq!(findings(&production, &history), expected);
    let ignore = Ignore::parse(&["privileges".into(), "column:public.orders.[az]".into()]).unwrap();
    let kept: Vec<String> = compare(&production, &history, &ignore).findings.into_iter().map(|f| f.object).collect();
    assert_eq!(kept, vec!["public.orders.b", "public.orders.note"]);
}

#[test]
fn changed_keys_are_the_objects_added_or_altered_named_as_findings_name_them() {
    let before = orders();
    let mut after = orders();
    replace(&mut after, "public.orders.total", |e| e.definition = "numeric DEFAULT 1".into());
    after.push(labelled(
        Index,
        "CREATE INDEX ON public.orders USING btree (note)",
        "public.orders_note_idx",
        (Table, "public.orders"),
    ));
    after.retain(|e| e.name != "public.orders.id");
    let keys = changed_keys(&before, &after);
    let expected = [
        (DriftKind::Column, "public.orders.total"),
        (DriftKind::Index, "public.orders_note_idx"),
        (DriftKind::IndexName, "public.orders_note_idx"),
    ];
    assert_eq!(keys, expected.map(|(k, n)| (k, n.to_string())));
    assert_eq!(changed_keys(&after, &after), vec![]);
}

#[test]
fn a_table_and_its_column_both_altered_stay_two_findings() {
    let mut production = orders();
    replace(&mut production, "public.orders", |e| {
        if e.kind == Table {
            e.definition = "unlogged".into();
        }
    });
    replace(&mut production, "public.orders.note", |e| e.definition = "varchar(10)".into());
    let expected = vec![
        found(DriftCause::Different, DriftKind::Column, "public.orders.note"),
        found(DriftCause::Different, DriftKind::Table, "public.orders"),
    ];
    assert_eq!(findings(&production, &orders()), expected);
}
