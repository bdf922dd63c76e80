//! `make demo-drift` as a test: the demo database built by
//! snapshots/generate.sh with snapshots/demo-out-of-band.sql applied by hand,
//! rehearsed with `rehearse drift scenarios/drift-demo.yaml`: the Alembic
//! release applies, its history builds from empty, and exactly the two
//! changes made by hand are drift.

use std::process::Command;

use rehearse::pg::DriftKind;
use rehearse::report::{DriftCause, RunStatus};

use crate::support::{Sandbox, REPO};

#[test]
fn the_drift_demo_finds_the_index_and_the_default_changed_by_hand() {
    let sandbox = Sandbox::new();
    let dump = sandbox.path().join("drift.dump");
    let out = Command::new(format!("{REPO}/snapshots/generate.sh"))
        .args(["--scale", "0.05", "--out-of-band", &format!("{REPO}/snapshots/demo-out-of-band.sql"), "--out"])
        .arg(&dump)
        .output()
        .expect("generate.sh runs");
    assert!(out.status.success(), "generate.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let scenario = format!("{REPO}/scenarios/drift-demo.yaml");
    let reports = sandbox.reports();
    let run = sandbox.rehearse(&[
        "drift",
        &scenario,
        "--dump",
        dump.to_str().unwrap(),
        "--out",
        reports.to_str().unwrap(),
        "--format",
        "markdown,json",
    ]);
    run.assert_code(0);
    let report = run.report();
    assert_eq!(report.status, RunStatus::Passed);
    let drift = report.drift.as_ref().expect("a drift report");
    assert_eq!(drift.error, None);
    assert_eq!(drift.role.as_deref(), Some("app"), "built as the owner of alembic_version in the dump");
    let found: Vec<(DriftKind, &str, DriftCause, Option<&str>)> =
        drift.findings.iter().map(|f| (f.kind, f.object.as_str(), f.cause, f.revision.as_deref())).collect();
    assert_eq!(
        found,
        [
            (DriftKind::Index, "public.orders_user_status_by_hand_idx", DriftCause::OnlyInProduction, None),
            (DriftKind::Column, "public.users.plan", DriftCause::Different, Some("a1_baseline")),
        ]
    );
    let plan = &drift.findings[1];
    assert!(plan.production.as_deref().unwrap().contains("DEFAULT 'pro'"), "{plan:?}");
    assert!(plan.history.as_deref().unwrap().contains("DEFAULT 'free'"), "{plan:?}");
    assert!(drift.checked["tables"] >= 6, "{:?}", drift.checked);
    let md = run.markdown();
    assert!(md.contains("## Drift") && md.contains("### Only in production: changed out of band (1)"), "{md}");
    assert!(md.contains("drift: 2 differences from the history"));
}
