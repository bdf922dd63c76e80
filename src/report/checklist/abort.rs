//! Have an abort plan: answered by the abort rehearsal (`abort:`): what
//! cancelling a migration part-way leaves, how long the locks take to go,
//! and the recovery, run and proved on a copy.

use super::*;

pub(super) fn abort_plan(f: &Facts) -> ChecklistItem {
    let mut item = Item::new(ChecklistId::AbortPlan, "Have abort plan");
    if f.r.abort.is_empty() {
        return item.verdict(Some(
            "Not rehearsed: write down what to do if a migration is cancelled part-way, or add `abort: { migrations: \
             longest, at: 50% }` to cancel the longest one on a copy and prove the recovery."
                .into(),
        ));
    }
    for a in &f.r.abort {
        item = item.evidence(format!("{}.", summary::capitalize(&a.line(true))));
    }
    let unproved: Vec<String> =
        f.r.abort.iter().filter(|a| !a.proved()).map(|a| format!("`{}`", a.migration)).collect();
    item.verdict(match unproved.is_empty() {
        true => None,
        false => Some(format!(
            "The recovery after cancelling {} was not proved on the copy: see the abort section, fix the recovery \
             by hand and rehearse again.",
            unproved.join(", ")
        )),
    })
}
