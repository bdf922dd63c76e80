//! Compatible with the running app version.

use super::*;

/// Done only when the running app's queries were checked after every
/// migration and none broke; without a corpus, a human confirms it.
pub(super) fn app_compatibility(f: &Facts) -> ChecklistItem {
    let item = Item::new(ChecklistId::AppCompatibility, "Compatible with the running app version (expand-contract)")
        .evidence(f.destructive_line());
    let Some(info) = &f.r.compat else {
        let todo = if f.destructive.is_empty() {
            "Confirm the app version running during the deploy works with both the old and the new schema \
             (`compat.queries` checks its queries against each migration)."
        } else {
            "Confirm the app version running in production no longer reads or writes what these changes drop or \
             rename (contract only after the app stopped using it; `compat.queries` checks its queries)."
        };
        return item.verdict(Some(todo.into()));
    };
    let mut item = item.evidence(compat_checked(f, info));
    if !info.already_broken.is_empty() {
        let list: Vec<String> = info.already_broken.iter().map(|b| summary::broken_line(b, 80, true)).collect();
        item = item.evidence(format!(
            "Already failing before the first migration, so not caused by this release: {}.",
            list.join("; ")
        ));
    }
    let broken: Vec<String> = f
        .ran
        .iter()
        .filter_map(|m| m.compat.as_ref().map(|c| (m, c)))
        .flat_map(|(m, c)| {
            c.broken.iter().map(move |b| format!("`{}` breaks {}", m.id, summary::broken_line(b, 80, true)))
        })
        .collect();
    item.verdict(match broken.is_empty() {
        false => Some(format!(
            "Keep the running app working until it is replaced: make these changes expand-contract (add the new, \
             switch the app, then remove the old in a later release), or deploy an app version that works with \
             both schemas first. {}.",
            broken.join("; ")
        )),
        true => f.unless_incomplete(|u| {
            format!("{u}, so the queries were not checked against every migration: fix and re-run.")
        }),
    })
}

/// "Checked 12 queries of the running app (`queries.sql`; 1 utility statement ignored) ...".
pub(super) fn compat_checked(f: &Facts, info: &super::super::CompatInfo) -> String {
    let ignored = summary::ignored_statements(info).map(|i| format!("; {i}")).unwrap_or_default();
    let after = f.ran.iter().filter(|m| m.compat.is_some()).count();
    let broken = summary::broken_by_release(f.r);
    let verdict = match broken {
        0 => "none broke".to_string(),
        n => format!("{} broke", summary::queries(n)),
    };
    format!(
        "Checked {} of the running app (`{}`{ignored}) before the first migration and after each of the {}: \
         prepared against the schema, INSERTs' omitted columns held against NOT NULL columns without a default; {verdict}.",
        summary::queries(info.checked),
        file_name(&info.queries),
        count(after, "applied migration", "applied migrations"),
    )
}

/// The file name of a path, as the evidence shows it.
pub(super) fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.into())
}
