//! The compact body `rehearse comment` posts on a pull or merge request:
//! the verdict, what needs a reviewer (breaches, regressions, hazards, the
//! app's broken queries), one table of the migrations with their
//! production-scale estimate, and each migration's section of report.md
//! folded. Sections in reading order, so a body over the platform's limit
//! is cut at a section boundary, from the end.

use std::fmt::Write;

use super::{bullets, code_cell, escape, hazards, migration, put};
use crate::report::summary::{self, verdict};
use crate::report::{format_bytes, format_ms, range_ms, Report};

/// The hidden line that finds a scenario's comment again: one comment per
/// scenario on a pull request, edited in place.
pub fn marker(scenario: &str) -> String {
    // `--` may not appear inside an HTML comment.
    format!("<!-- rehearse-comment scenario={} -->", scenario.replace("--", "-\u{2010}"))
}

/// The body for `r`, at most `limit` bytes: the marker, then whole
/// sections while they fit, then a note naming what was left out.
pub fn body(r: &Report, artifact_url: Option<&str>, limit: usize) -> String {
    let mut body = format!("{}\n", marker(&r.scenario));
    let sections = sections(r, artifact_url);
    let full = sections.iter().map(String::len).sum::<usize>() + body.len();
    if full <= limit {
        sections.iter().for_each(|s| body.push_str(s));
        return body;
    }
    let note = |left: usize| {
        let full = match artifact_url {
            Some(url) => format!("[the full report]({url})"),
            None => "the full report (report.md among the job's artifacts)".to_string(),
        };
        format!("\n*Cut to fit the comment: {left} section(s) left out; {full} has every one.*\n")
    };
    // The head is always kept; the note is sized for the most sections it can name.
    let room = limit.saturating_sub(body.len() + note(sections.len()).len());
    let mut used = 0;
    let mut kept = 0;
    for (i, s) in sections.iter().enumerate() {
        if i > 0 && used + s.len() > room {
            break;
        }
        used += s.len();
        kept += 1;
    }
    sections[..kept].iter().for_each(|s| body.push_str(s));
    body.push_str(&note(sections.len() - kept));
    body
}

/// The sections, each ending with a blank line: the head, what needs a
/// reviewer, the migrations table, then each migration folded.
fn sections(r: &Report, artifact_url: Option<&str>) -> Vec<String> {
    let mut out = vec![head(r, artifact_url)];
    let attention = attention(r);
    if !attention.is_empty() {
        out.push(attention);
    }
    if !r.migrations.is_empty() {
        out.push(table(r));
    }
    out.extend(r.migrations.iter().map(|m| {
        let mut w = String::new();
        put!(w, "<details><summary><code>{}</code>: {}</summary>\n", m.id, m.status.as_str());
        migration::render(&mut w, m, r);
        put!(w, "</details>\n");
        w
    }));
    out
}

/// Title, verdict, the failed migration, the link to the artifact.
fn head(r: &Report, artifact_url: Option<&str>) -> String {
    let mut w = String::new();
    put!(w, "## Migration rehearsal: {}\n", r.scenario);
    put!(w, "**{}**\n", verdict(r));
    if let Some(m) = summary::failed(r) {
        put!(w, "**Failed migration:** `{}`: {}\n", m.id, summary::first_error_line(m));
    }
    let version = r.postgres.version.as_deref().unwrap_or("?");
    let link = artifact_url.map(|u| format!(" [Full report]({u})")).unwrap_or_default();
    put!(w, "PostgreSQL {version}, started {}.{link}\n", r.started_at);
    w
}

/// Breaches, regressions against the baseline, hazards and the app's
/// queries the release breaks: what a reviewer must look at first.
fn attention(r: &Report) -> String {
    let mut w = String::new();
    bullets(&mut w, Some("**Over budget:**"), &summary::breach_lines(r, true));
    if let Some(heading) = summary::baseline_heading(r) {
        put!(w, "**{}.**\n", summary::capitalize(&heading));
        bullets(&mut w, None, &summary::regression_lines(r, true));
    }
    let broken: Vec<String> = r
        .migrations
        .iter()
        .flat_map(|m| m.compat.iter().flat_map(move |c| c.broken.iter().map(move |b| (m, b))))
        .map(|(m, b)| format!("`{}` breaks `{}`: {}", m.id, code_cell(&b.query, 90), escape(&b.message)))
        .collect();
    bullets(&mut w, Some("**Breaks the running app:**"), &broken);
    hazards::section(&mut w, r);
    w
}

/// One row per migration: status, time here and at production's scale,
/// the longest block of the app, WAL, hazards.
fn table(r: &Report) -> String {
    let mut w = String::new();
    let scale = r.estimate.is_some();
    let estimate_head = if scale { " At production scale |" } else { "" };
    put!(w, "| Migration | Status | Time |{estimate_head} Longest block | WAL | Hazards |");
    put!(w, "|---|---|--:|{}--:|--:|--:|", if scale { "--:|" } else { "" });
    for m in &r.migrations {
        let estimate = match (scale, &m.estimate) {
            (false, _) => String::new(),
            (true, Some(e)) => format!(" {} |", range_ms(e.duration_ms)),
            (true, None) => " – |".to_string(),
        };
        put!(
            w,
            "| `{}` | {} | {} |{estimate} {} | {} | {} |",
            m.id,
            m.status.as_str(),
            format_ms(m.duration_ms),
            summary::block_text(&summary::longest_block_of(m).map(|(b, _)| b.clone())),
            format_bytes(m.wal.bytes),
            m.hazards.len()
        );
    }
    put!(w);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Report {
        serde_json::from_str(include_str!("../../../tests/fixtures/report-v1-demo.json")).unwrap()
    }

    #[test]
    fn the_body_starts_with_its_marker_and_folds_each_migration() {
        let r = demo();
        let body = body(&r, Some("https://ci.example/artifacts/1"), 65_536);
        assert!(body.starts_with(&format!("{}\n## Migration rehearsal: {}", marker(&r.scenario), r.scenario)));
        assert_eq!(body.matches("<details>").count(), r.migrations.len());
        assert!(body.contains("[Full report](https://ci.example/artifacts/1)"));
        assert!(!body.contains("Cut to fit"));
    }

    #[test]
    fn a_body_over_the_limit_is_cut_at_a_section_and_says_so() {
        let r = demo();
        let whole = body(&r, None, usize::MAX);
        let cut = body(&r, None, whole.len() / 2);
        assert!(cut.len() <= whole.len() / 2, "{} > {}", cut.len(), whole.len() / 2);
        let kept = cut.split("\n*Cut to fit").next().unwrap();
        assert!(whole.starts_with(kept), "cut at a section boundary");
        assert!(kept.ends_with("\n\n") || kept.ends_with("</details>\n"), "{:?}", &kept[kept.len() - 40..]);
        assert!(cut.contains("section(s) left out; the full report (report.md among the job's artifacts)"));
        // The head is kept whatever the limit.
        assert!(body(&r, None, 10).contains("**PASSED") || body(&r, None, 10).contains("**BUDGET"));
    }

    #[test]
    fn markers_name_the_scenario_and_stay_one_html_comment() {
        assert_eq!(marker("nightly"), "<!-- rehearse-comment scenario=nightly -->");
        assert!(!marker("a--b").trim_start_matches("<!--").trim_end_matches("-->").contains("--"));
    }
}
