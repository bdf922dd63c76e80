//! Rollback strategy (forward).

use super::*;

pub(super) fn rollback(f: &Facts) -> ChecklistItem {
    let todo = if f.destructive.is_empty() {
        "Write down the forward fix for each migration: rolling forward is the plan, with the fix ready as the next migration."
    } else {
        "Write down the forward fix for each migration: rolling forward is the plan, and dropped data comes back \
         only from a backup, so check the backup holds it."
    };
    Item::new(ChecklistId::Rollback, "Rollback strategy (forward)")
        .evidence(f.destructive_line())
        .verdict(Some(todo.into()))
}
