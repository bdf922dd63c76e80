//! The "Hazards" section: the run's hazards by rule, one line a rule with
//! its count, migrations and fix; how many `hazards.ignore` set aside; and
//! its entries that named no pending migration. Each migration's section
//! keeps every finding.

use std::fmt::Write;

use super::put;
use crate::report::{hazards, Report};

/// How many migrations a rule's line names before "and N more".
const SHOWN: usize = 10;

pub(super) fn section(w: &mut String, r: &Report) {
    let found = hazards::found(r);
    let ignored = hazards::ignored_line(r, true);
    let unused = hazards::unused_ignores(&r.hazards.unused_ignores, true);
    let unevaluated: Vec<&str> =
        r.migrations.iter().filter(|m| !m.not_evaluated.is_empty()).map(|m| m.id.as_str()).collect();
    if found.is_empty() && ignored.is_none() && unused.is_none() && unevaluated.is_empty() {
        return;
    }
    put!(w, "## Hazards\n");
    if !unevaluated.is_empty() {
        // Not "no hazards": for these, the rules that read statements had nothing to read.
        put!(w, "**Not evaluated** for {}: each one's section says what and why.\n", unevaluated.join(", "));
    }
    if !found.is_empty() {
        put!(
            w,
            "{}, by rule; each migration's section below has every finding with its statement and evidence.\n",
            hazards::found_heading(&found)
        );
        for g in &found {
            let fix = match g.fixes.as_slice() {
                [one] => format!("Fix: {}.", one.trim_end_matches('.')),
                many => {
                    format!("Fixes: {}.", many.iter().map(|f| f.trim_end_matches('.')).collect::<Vec<_>>().join("; "))
                }
            };
            put!(w, "- **{}** {}. {fix} ([{}]({}))", g.rule, hazards::where_found(g, SHOWN, true), g.rule, g.docs);
        }
        put!(w);
    }
    if let Some(line) = ignored {
        put!(w, "{line}; kept in `report.json` under each migration's `ignored_hazards`.\n");
    }
    if let Some(unused) = unused {
        put!(w, "**`hazards.ignore` {}:** {unused}.\n", hazards::UNUSED_IGNORES);
    }
}
