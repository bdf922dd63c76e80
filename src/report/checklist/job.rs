//! Migrations as a standalone job, or at start-up.

use super::*;

pub(super) fn standalone_job(f: &Facts) -> ChecklistItem {
    let window = f.s.deploy_window.as_millis() as u64;
    let over: Vec<String> =
        f.r.migrations
            .iter()
            .filter(|m| duration(m) > window || m.status == MigrationStatus::TimedOut)
            .map(|m| {
                let timed_out = if m.status == MigrationStatus::TimedOut { "+, timed out" } else { "" };
                format!("`{}` ({}{timed_out}{})", m.id, format_ms(duration(m)), f.at_scale())
            })
            .collect();
    let longest = f
        .ran
        .iter()
        .max_by_key(|m| duration(m))
        .map(|m| format!("`{}` {}{}", m.id, format_ms(duration(m)), f.at_scale()))
        .unwrap_or_else(|| "none".into());
    let mut item =
        Item::new(ChecklistId::StandaloneJob, "Runs as a standalone job, not multi-replica app start-up").evidence(
            format!("Deploy window {} (`report.deploy_window`); longest migration {longest}.", format_ms(window)),
        );
    // How it was launched: from the app's image as the pre-deploy Job, or here.
    if let Some(line) =
        summary::launch_line(f.r, true).filter(|_| f.r.launch.as_ref().is_some_and(|l| l.image.is_some()))
    {
        item = item.evidence(line);
    }
    let race = f.r.race.as_ref();
    if let Some(race) = race {
        item = item.evidence(format!("{}.", summary::capitalize(&summary::race_line(race, true))));
    }
    let unproven = race.filter(|r| r.verdict != RaceVerdict::Safe);
    let mut item = item.verdict(match (unproven, over.is_empty()) {
        (Some(race), _) if race.verdict == RaceVerdict::Unsafe => Some(format!(
            "Run the migrations once, from a single Job (a Kubernetes Job, a one-off release step) before the new \
             replicas start, not at each replica's start-up, where {} of them racing was unsafe.",
            race.replicas
        )),
        (Some(race), _) => Some(format!(
            "Racing {} replicas proved nothing this time (inconclusive): re-run it, or run the migrations once, \
             from a single Job (a Kubernetes Job, a one-off release step), before the new replicas start.",
            race.replicas
        )),
        (None, false) => Some(format!(
            "Run {} as a standalone job (a Kubernetes Job, a one-off CI step) off the deploy's critical path, never \
             at app start-up where every replica would race to run it.",
            over.join(", ")
        )),
        (None, true) => f.unless_incomplete(|u| format!("{u}, so their runtime is unknown: fix and re-run.")),
    });
    if item.done {
        item.evidence.push(match race {
            Some(race) => format!(
                "Every migration fits the deploy window, and the start-up pattern held for {} replicas racing: \
                 run them from a single job or release step all the same, where one failure stops the release.",
                race.replicas
            ),
            None => "Every migration fits the deploy window: run them once per release from a single job or release \
                     step, not at each replica's start-up."
                .into(),
        });
    }
    item
}
