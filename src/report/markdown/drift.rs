//! The "Drift" section: production plus the release against the schema the
//! whole history builds from empty, the findings grouped by cause.

use std::fmt::Write;

use super::{code_cell, escape, put};
use crate::report::{format_ms, summary, DriftCause, DriftFinding, Report};

pub(super) fn section(w: &mut String, r: &Report) {
    let Some(drift) = &r.drift else { return };
    put!(w, "## Drift\n");
    put!(w, "**{}.**\n", summary::capitalize(&summary::drift_line(drift)));
    let role = drift.role.as_deref().map(|r| format!(" as role `{r}`")).unwrap_or_default();
    put!(
        w,
        "The whole migration history was built from empty in `{}`{role} in {}, and its schema compared by catalog with \
         the rehearsed database (production plus this release).",
        drift.database,
        format_ms(drift.build_ms)
    );
    if !drift.extensions_created.is_empty() {
        put!(
            w,
            "Created before the build because production has them and no migration creates them: {}.",
            drift.extensions_created.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
        );
    }
    if !drift.ignored.is_empty() {
        put!(
            w,
            "Left out (`drift.ignore`): {}.",
            drift.ignored.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(error) = &drift.error {
        put!(w, "\nThe history could not be built, so nothing was compared:\n\n```\n{}\n```\n", error.trim_end());
        return;
    }
    let checked: Vec<String> = drift.checked.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{n} {k}")).collect();
    put!(w, "Compared: {}.\n", checked.join(", "));
    for cause in [DriftCause::OnlyInProduction, DriftCause::OnlyInHistory, DriftCause::Different] {
        let findings: Vec<&DriftFinding> = drift.findings.iter().filter(|f| f.cause == cause).collect();
        if findings.is_empty() {
            continue;
        }
        put!(w, "### {} ({})\n", heading(cause), findings.len());
        put!(w, "| Object | Kind | Production | History | Likely cause | Revision |");
        put!(w, "|---|---|---|---|---|---|");
        for f in findings {
            let side =
                |d: &Option<String>| d.as_deref().map_or("-".to_string(), |d| format!("`{}`", code_cell(d, 120)));
            put!(
                w,
                "| `{}` | {} | {} | {} | {} | {} |",
                f.object,
                f.kind,
                side(&f.production),
                side(&f.history),
                escape(&f.likely),
                f.revision.as_deref().map_or("-".to_string(), |r| format!("`{r}`"))
            );
        }
        put!(w);
    }
}

fn heading(cause: DriftCause) -> &'static str {
    match cause {
        DriftCause::OnlyInProduction => "Only in production: changed out of band",
        DriftCause::OnlyInHistory => "Only in the history: stamped but never run, or dropped out of band",
        DriftCause::Different => "Defined differently: an applied migration edited, or a manual fix",
    }
}
