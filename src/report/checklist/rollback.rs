//! Rollback strategy (forward): filled with the rollback rehearsal's
//! evidence when the scenario has `rollback:`, and plainly "not rehearsed"
//! (with what to add) when it does not.

use super::*;

pub(super) fn rollback(f: &Facts) -> ChecklistItem {
    let item = Item::new(ChecklistId::Rollback, "Rollback strategy (forward)").evidence(f.destructive_line());
    let Some(b) = &f.r.rollback else {
        let todo = if f.destructive.is_empty() {
            "Not rehearsed: write the forward rollback release (the migrations that undo this one) and add it as \
             `rollback: { migrations: ... }` (or `rollback: { downgrade: true }` for Alembic) to rehearse it."
        } else {
            "Not rehearsed: write the forward rollback release and add it as `rollback: { migrations: ... }` (or \
             `rollback: { downgrade: true }` for Alembic) to rehearse it; dropped data comes back only from a \
             backup, so check the backup holds it."
        };
        return item.verdict(Some(todo.into()));
    };
    let mut item = item.evidence(format!("Rehearsed: {}.", b.line()));
    for d in &b.data_loss {
        item = item.evidence(d.line().trim().to_string());
    }
    let todo = if b.skipped.is_some() {
        Some("Re-run once the release applies whole: the rollback starts from its end.")
    } else if b.failed().is_some() {
        Some("Fix the rollback release: it did not apply on the rehearsed release.")
    } else if b.compat_restored == Some(false) {
        Some("Make the rollback restore what the previous app version's queries use (listed in the report).")
    } else if !b.schema_diff.is_empty() {
        Some("Make the rollback undo the schema differences it leaves, or note why they are harmless.")
    } else if !b.data_loss.is_empty() {
        Some("The rollback cannot bring back the values the release drops: check the backup holds them.")
    } else {
        None
    };
    item.verdict(todo.map(String::from))
}
