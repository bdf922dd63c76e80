//! After a migration fails: what it left in the database (relations created
//! outside a rolled-back transaction, invalid indexes), where the tool's
//! version table stands, and the steps a runbook would give to recover.

use tokio_postgres::Client;

use crate::catalog;
use crate::migrations::MigrationTool;
use crate::observe::relations::RelationSnapshot;
use crate::pg::RelationKind;
use crate::report::{MigrationReport, Recovery};

/// Compares the schema before and after the failed migration. A catalog
/// that cannot be read is an error, never "nothing was left".
pub async fn assess(
    observer: &Client,
    before: &RelationSnapshot,
    after: &RelationSnapshot,
    m: &MigrationReport,
    tool: MigrationTool,
    history: Option<&str>,
) -> Result<Recovery, tokio_postgres::Error> {
    let added = after.added_since(before);
    let invalid = catalog::invalid_indexes(observer).await?;
    let mut r = Recovery {
        alembic_version: None,
        leftovers: added.iter().map(|(name, kind)| format!("{name} ({kind})")).collect(),
        invalid_indexes: invalid.into_iter().filter(|i| added.iter().any(|(n, _)| n == i)).collect(),
        steps: Vec::new(),
    };
    if !added.is_empty() {
        let drops: Vec<String> = added
            .iter()
            .filter(|(name, kind)| {
                *kind != RelationKind::Index || !added.iter().any(|(t, k)| *k == RelationKind::Table && owns(t, name))
            })
            // Names come from format('%I.%I'): already quoted where needed.
            .map(|(name, kind)| match kind {
                RelationKind::Index => format!("DROP INDEX CONCURRENTLY IF EXISTS {};", name),
                RelationKind::MaterializedView => format!("DROP MATERIALIZED VIEW IF EXISTS {};", name),
                _ => format!("DROP TABLE IF EXISTS {};", name),
            })
            .collect();
        r.steps.push(format!(
            "Remove what the failed migration left behind (it ran outside a transaction, so nothing rolled it back): {}",
            drops.join(" ")
        ));
    }
    if tool == MigrationTool::Alembic {
        let table = history.unwrap_or("alembic_version");
        r.alembic_version = catalog::alembic_version(observer, table).await?;
        let at = r.alembic_version.as_ref().map(|v| v.join(", ")).unwrap_or_else(|| "empty".into());
        // `version` is the revision itself (`id` is `app/revision` with several apps).
        r.steps.push(format!(
            "The database's {table} is {at}: revision {} is not recorded, so `alembic upgrade` will run it again. \
             Fix the revision, rehearse again, then deploy.",
            m.version
        ));
        r.steps.push(format!(
            "If production hits this and you finish {}'s changes by hand instead, record it with `alembic stamp {}` \
             so Alembic does not run it again.",
            m.version, m.version
        ));
    } else if tool == MigrationTool::Django {
        r.steps.extend(django_steps(&catalog::django_history(observer).await?, &m.version));
    } else if tool == MigrationTool::Sql {
        r.steps.push(format!(
            "{} is not recorded in the tracking table, so it runs again on the next attempt: fix it first.",
            m.file.as_deref().unwrap_or(&m.id)
        ));
    } else {
        r.steps.push(format!("Check the tool's own version table before re-running {}.", m.id));
    }
    Ok(r)
}

/// Django's steps, from `django_migrations` as the failure left it
/// (`applied`: `app.name` rows) for the migration `id` (`app.name`): it is
/// not recorded, so `migrate` runs it again; finished by hand, `--fake`
/// records it.
fn django_steps(applied: &[String], id: &str) -> Vec<String> {
    let (app, name) = id.split_once('.').unwrap_or((id, id));
    let last = applied.iter().filter(|a| a.split_once('.').is_some_and(|(x, _)| x == app)).max();
    let at = match last {
        Some(last) => format!("its last migration of {app} is {last}"),
        None => format!("it records no migration of {app}"),
    };
    vec![
        format!(
            "The database's django_migrations does not record {id} ({at}), so `python manage.py migrate` runs it \
             again. Fix the migration, rehearse again, then deploy."
        ),
        format!(
            "If production hits this and you finish {id}'s changes by hand instead, record it with \
             `python manage.py migrate --fake {app} {name}` so Django does not run it again."
        ),
    ]
}

/// `public.orders_x_idx` is assumed to belong with a new table when both are
/// new and the index name starts with the table's name: dropping the table drops it.
fn owns(table: &str, index: &str) -> bool {
    index.starts_with(table)
}
