//! The drift stage (`drift:`, `rehearse drift`): once the rehearsal applied
//! every pending migration, the whole history is built from empty in a
//! second database on the same server (`<db>_drift`, from `template0`), as
//! the role production's migrations run as, one migration at a time, the
//! schema read after each so every object is credited to the migration that
//! created or last altered it; then the two schemas are compared by catalog
//! (`catalog::schema_snapshot`, `drift::compare`). A history that cannot be
//! built is the drift report's `error`: the rehearsal's own results stand.

use std::collections::BTreeMap;
use std::time::Instant;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::production::AsProduction;
use crate::backend::copy::Template;
use crate::backend::Throwaway;
use crate::catalog::{self, SchemaEntry};
use crate::drift::{changed_keys, compare};
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::network::ToolNetwork;
use crate::migrations::sources::SourcePlan;
use crate::migrations::{sql, MigrationSource, MigrationsPlan, Target, Tracing};
use crate::pg::{quote_ident, DriftKind};
use crate::plan::drift::DriftPlan;
use crate::report::DriftReport;
use crate::sys::db::{connect, ConnInfo};

const APP_NAME: &str = "rehearse-drift";

/// The drift stage's line: where the history is built.
pub fn detail(rehearsed: &str) -> String {
    format!("the whole history built from empty in {rehearsed}_drift, compared with the rehearsed database")
}

/// Builds the whole history from empty in a fresh database beside the
/// rehearsed one, and compares the two.
pub async fn build_and_compare(
    plan: &DriftPlan,
    sources: &[SourcePlan],
    server: &mut Throwaway,
    (network, production): (&ToolNetwork, Option<&AsProduction>),
    cancel: &CancellationToken,
) -> Result<DriftReport> {
    let database = server.copy_database("drift", Template::Empty).await?;
    // Production's role (`production.as_role`), unless drift.role names
    // another: the build logs in as it, with its login settings, as the
    // rehearsal's migrations did (`production::login_on`).
    let login = match production.and_then(|p| p.conn.as_ref()) {
        Some(l) if plan.role.as_ref().is_none_or(|r| *r == l.user) => {
            Some(super::production::login_on(production, server, &database).await?)
        }
        _ => None,
    };
    check(plan, sources, server.conn(), (&database, login.as_ref()), network, cancel).await
}

/// The drift report: the build, then the comparison (or why there is none).
async fn check(
    plan: &DriftPlan,
    sources: &[SourcePlan],
    rehearsed: &ConnInfo,
    (database, login): (&ConnInfo, Option<&ConnInfo>),
    network: &ToolNetwork,
    cancel: &CancellationToken,
) -> Result<DriftReport> {
    let env = |what: &str| {
        let what = what.to_string();
        move |e| Error::environment_because(what.clone(), e)
    };
    let production = connect(rehearsed, &rehearsed.dbname, APP_NAME)
        .await
        .map_err(env(&format!("cannot connect to {}", rehearsed.masked(&rehearsed.dbname))))?;
    let built = connect(database, &database.dbname, APP_NAME)
        .await
        .map_err(env(&format!("cannot connect to {}", database.masked(&database.dbname))))?;
    let except = history_tables(sources);
    let except: Vec<&str> = except.iter().map(String::as_str).collect();
    let role = match (login, &plan.role) {
        (Some(login), _) => Some(login.user.clone()),
        (None, Some(role)) => Some(role.clone()),
        (None, None) => history_owner(&production, sources, &rehearsed.user)
            .await
            .map_err(env("cannot read who owns the history table"))?,
    }
    .filter(|role| *role != rehearsed.user);
    if let Some(role) = &role {
        // As production's database is the migrations' role's: CREATE in public (PostgreSQL 15's pg_database_owner).
        let sql = format!("ALTER DATABASE {} OWNER TO {}", quote_ident(&database.dbname), quote_ident(role));
        production.batch_execute(&sql).await.map_err(|e| {
            ErrorKind::ScenarioInvalid
                .because(format!("cannot build the history as role {role}: set drift.role to a role the dump has"), e)
        })?;
    }
    let mut report = DriftReport {
        database: database.dbname.clone(),
        role: role.clone(),
        ignored: plan.ignore_text.clone(),
        ..DriftReport::default()
    };
    report.extensions_created = extensions(&production, &built, sources).await?;
    let started = Instant::now();
    let build = Build {
        sources,
        database: login.unwrap_or(database),
        built: &built,
        // A login as the role needs no SET ROLE.
        role: role.as_deref().filter(|_| login.is_none()),
        except: &except,
        network,
        cancel,
    };
    let credited = build.run().await;
    report.build_ms = started.elapsed().as_millis() as u64;
    let credited = match credited {
        Ok(credited) => credited,
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(e) => {
            report.error = Some(e.with_causes());
            return Ok(report);
        }
    };
    let read = env("cannot read the schemas to compare");
    let mut ours = catalog::schema_snapshot(&production, &except).await.map_err(&read)?;
    if let Some(role) = &role {
        as_if_run_by(&mut ours, &rehearsed.user, role);
    }
    let theirs = catalog::schema_snapshot(&built, &except).await.map_err(read)?;
    let comparison = compare(&ours, &theirs, &plan.ignore);
    report.checked = comparison.checked;
    report.findings = comparison.findings;
    for f in &mut report.findings {
        f.revision = credited.get(&(f.kind, f.object.clone())).cloned();
    }
    Ok(report)
}

/// The rehearsal ran the pending migrations as rehearse's own role, so what
/// they created is owned by it; production's migrations' role would own it.
/// Read so in production's snapshot, and the owner compares like for like:
/// a relation's (`owner` entries) and a schema's (its entry's definition
/// starts `owner NAME;`, see `catalog::schema_snapshot`).
fn as_if_run_by(entries: &mut [SchemaEntry], rehearsal_user: &str, role: &str) {
    let schema_owner = format!("owner {rehearsal_user};");
    for e in entries.iter_mut() {
        match e.kind {
            catalog::SchemaEntryKind::Owner if e.definition == rehearsal_user => e.definition = role.to_string(),
            catalog::SchemaEntryKind::Schema if e.definition.starts_with(&schema_owner) => {
                e.definition = format!("owner {role};{}", &e.definition[schema_owner.len()..]);
            }
            _ => {}
        }
    }
}

/// The history tables of the sources, as `format('%I.%I')` spells them.
fn source_histories(sources: &[SourcePlan]) -> Vec<String> {
    let qualify = |t: &str| match t.contains('.') {
        true => t.to_string(),
        false => format!("public.{t}"),
    };
    sources
        .iter()
        .filter_map(|s| MigrationSource::new(&s.plan, Tracing::default()).history_table())
        .map(|t| qualify(&t))
        .collect()
}

/// Bookkeeping, never compared: the sources' history tables, rehearse's own
/// tables, and every other tool's known history table (a dump may carry
/// another tool's, as the demo's carries both Alembic's and rehearse's).
pub(super) fn history_tables(sources: &[SourcePlan]) -> Vec<String> {
    let mut out = vec![sql::DEFAULT_TABLE.to_string(), catalog::HEARTBEAT_TABLE.to_string()];
    out.extend(catalog::HISTORY_TABLES.iter().map(|(t, _)| format!("public.{t}")));
    out.extend(source_histories(sources));
    out.sort();
    out.dedup();
    out
}

/// The owner of the first source's history table that came with the dump:
/// the role production's migrations run as. A table the rehearsal made (its
/// owner is rehearse's own role) says nothing of production. None when no
/// source's table came with the dump.
async fn history_owner(
    db: &Client,
    sources: &[SourcePlan],
    rehearsal_user: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    for table in source_histories(sources) {
        match catalog::table_owner(db, &table).await? {
            Some(owner) if owner != rehearsal_user => return Ok(Some(owner)),
            _ => continue,
        }
    }
    Ok(None)
}

/// Creates, before the build, the extensions production has that no
/// migration file names (a DBA's `CREATE EXTENSION`, not the history's);
/// those a migration names are left for it to create. Returns them.
async fn extensions(production: &Client, built: &Client, sources: &[SourcePlan]) -> Result<Vec<String>> {
    let read = |e| ErrorKind::CatalogReadFailed.because("cannot read production's extensions", e);
    let texts = migration_texts(sources);
    let mut created = Vec::new();
    for (name, schema) in catalog::extensions(production).await.map_err(read)? {
        let lower = name.to_ascii_lowercase();
        if name == "plpgsql" || texts.iter().any(|t| t.contains(&lower)) {
            continue;
        }
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE EXTENSION IF NOT EXISTS {} SCHEMA {schema}",
            quote_ident(&name),
            schema = quote_ident(&schema)
        );
        built.batch_execute(&sql).await.map_err(|e| {
            Error::environment_because(
                format!("cannot create the extension {name} that production has in the database built from empty"),
                e,
            )
        })?;
        created.push(name);
    }
    Ok(created)
}

/// The migration files' texts, lowercased (SQL files and Alembic revisions), where an extension's name is looked for.
fn migration_texts(sources: &[SourcePlan]) -> Vec<String> {
    let mut texts = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = sources.iter().map(|s| s.dir.clone()).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "sql" || e == "py") {
                texts.extend(std::fs::read_to_string(&path).ok().map(|t| t.to_ascii_lowercase()));
            }
        }
    }
    texts
}

/// The history built from empty, one migration at a time.
struct Build<'a> {
    sources: &'a [SourcePlan],
    /// The built database as the migrations log in to it.
    database: &'a ConnInfo,
    /// A superuser session on the built database, for reading its schema.
    built: &'a Client,
    /// The role rehearse's session and the tools become (SET ROLE,
    /// PGOPTIONS) when they do not log in as it.
    role: Option<&'a str>,
    except: &'a [&'a str],
    network: &'a ToolNetwork,
    cancel: &'a CancellationToken,
}

impl Build<'_> {
    /// Applies every source's whole history; returns, per (kind, object),
    /// the migration that created or last altered it.
    async fn run(&self) -> Result<BTreeMap<(DriftKind, String), String>> {
        let runner = connect(self.database, &self.database.dbname, APP_NAME).await.map_err(|e| {
            ErrorKind::ConnectionFailed
                .because(format!("cannot connect to {}", self.database.masked(&self.database.dbname)), e)
        })?;
        let mut credited = BTreeMap::new();
        let mut before = self.snapshot().await?;
        for s in self.sources {
            let source = MigrationSource::new(&self.as_role(&s.plan), Tracing::default());
            self.become_role(&runner).await?;
            let target = Target {
                client: &runner,
                conn: self.database,
                cancel: self.cancel,
                watcher: None,
                network: self.network,
                lock_timeout: None,
                explain_memory: false,
            };
            let found = source.pending(&target).await?;
            for m in &found.migrations {
                self.become_role(&runner).await?;
                let applied = source.apply(m, &target).await?;
                if applied.interrupted {
                    return Err(Error::Interrupted);
                }
                if let Some(e) = applied.error {
                    let id = match &s.app {
                        Some(app) => format!("{app}/{}", m.id),
                        None => m.id.clone(),
                    };
                    return Err(Error::bad_input(format!(
                        "the history cannot be built from empty: {id} failed: {}",
                        e.message
                    )));
                }
                let after = self.snapshot().await?;
                let id = match &s.app {
                    Some(app) => format!("{app}/{}", m.id),
                    None => m.id.clone(),
                };
                for key in changed_keys(&before, &after) {
                    credited.insert(key, id.clone());
                }
                before = after;
            }
        }
        Ok(credited)
    }

    async fn snapshot(&self) -> Result<Vec<SchemaEntry>> {
        catalog::schema_snapshot(self.built, self.except).await.map_err(|e| {
            ErrorKind::CatalogReadFailed.because("cannot read the schema of the database built from empty", e)
        })
    }

    /// rehearse's own session (SQL files run there) as the role, settings a
    /// migration left reset.
    async fn become_role(&self, runner: &Client) -> Result<()> {
        let sql = match self.role {
            Some(role) => format!("RESET ALL; SET ROLE {}", quote_ident(role)),
            None => "RESET ALL".to_string(),
        };
        runner.batch_execute(&sql).await.map_err(|e| {
            ErrorKind::ScenarioInvalid.because(
                format!(
                    "cannot build the history as role {}: set drift.role to the role production's migrations run as",
                    self.role.unwrap_or("?")
                ),
                e,
            )
        })
    }

    /// The source with its tools connecting as the role (`PGOPTIONS=-c role=...`,
    /// which libpq and every driver built on it honour), and a command tool's
    /// `build` as its only migration.
    fn as_role(&self, plan: &MigrationsPlan) -> MigrationsPlan {
        // libpq's options: a space in a value is escaped with a backslash.
        let escaped = |role: &str| role.replace('\\', "\\\\").replace(' ', "\\ ");
        let option = self.role.map(|role| ("PGOPTIONS".to_string(), format!("-c role={}", escaped(role))));
        match plan.clone() {
            MigrationsPlan::Alembic(mut a) => {
                a.env.extend(option);
                // One process, as production builds it, each revision
                // committed so the schema read after it shows what it did.
                a.commit_each = true;
                MigrationsPlan::Alembic(a)
            }
            MigrationsPlan::Command(mut c) => {
                c.env.extend(option);
                c.apply = c.build.clone().unwrap_or_default();
                c.revisions = Some(vec!["build".into()]);
                MigrationsPlan::Command(c)
            }
            MigrationsPlan::Django(mut d) => {
                // Django commits each migration on its own: the schema read after it shows what it did.
                d.env.extend(option);
                MigrationsPlan::Django(d)
            }
            sql => sql,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SchemaEntryKind;

    fn entry(kind: SchemaEntryKind, name: &str, definition: &str) -> SchemaEntry {
        SchemaEntry { kind, name: name.into(), definition: definition.into(), label: None, parent: None }
    }

    #[test]
    fn what_the_rehearsals_user_owns_reads_as_the_roles() {
        let mut entries = vec![
            entry(SchemaEntryKind::Owner, "public.shipments", "rehearse"),
            entry(SchemaEntryKind::Owner, "public.orders", "app"),
            entry(SchemaEntryKind::Owner, "public.legacy", "dba"),
            entry(SchemaEntryKind::Schema, "reporting", "owner rehearse; privileges (owner): CREATE, USAGE"),
            entry(SchemaEntryKind::Schema, "archive", "owner rehearsex; privileges none"),
            entry(SchemaEntryKind::Column, "public.t.owner", "rehearse"),
        ];
        as_if_run_by(&mut entries, "rehearse", "app");
        let definitions: Vec<&str> = entries.iter().map(|e| e.definition.as_str()).collect();
        assert_eq!(
            definitions,
            [
                "app",
                "app",
                "dba",
                "owner app; privileges (owner): CREATE, USAGE",
                "owner rehearsex; privileges none",
                "rehearse"
            ]
        );
    }
}
