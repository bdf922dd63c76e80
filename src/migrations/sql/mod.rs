//! Plain SQL migration folders (Flyway, golang-migrate, sqlx, dbmate style):
//! the folder and its subfolders listed (`scan.rs`) by what each file name
//! says (`files.rs`; Flyway's callback events in `callbacks.rs`); what the
//! restored database has applied (`history.rs`; Flyway's checksums in
//! `checksum.rs`); Flyway's `${placeholders}` replaced (`placeholders.rs`);
//! each file split into statements by Postgres's own parser (`split.rs`) and
//! run in one transaction unless it holds a statement that cannot run in
//! one (`run.rs`).

mod callbacks;
mod checksum;
mod explain;
mod files;
mod history;
mod placeholders;
mod run;
mod scan;
mod split;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use tokio_postgres::Client;

use super::{Applied, Found, Migration, MigrationKind, SkippedFile, Target};
use crate::error::{ErrorKind, Result};
use crate::report::MigrationError;
use callbacks::Event;
use checksum::flyway_checksum;
use files::Role;
pub use files::{parse_file_name, SqlFile};
use history::{own_key, repeatable_key, History};
use placeholders::BuiltIns;
pub use split::{split, Piece, Pieces, Statement};

/// The tracking table rehearse records applied files in.
pub const DEFAULT_TABLE: &str = "public.rehearse_schema_migrations";
/// `checksum`: a repeatable's Flyway checksum when it was applied (added to
/// tables made before rehearse ran repeatables).
const CREATE_DEFAULT_TABLE: &str = "CREATE TABLE IF NOT EXISTS public.rehearse_schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms bigint,
    checksum    integer
);
ALTER TABLE public.rehearse_schema_migrations ADD COLUMN IF NOT EXISTS checksum integer";

/// Makes rehearse's tracking table (as the superuser) and gives it to
/// `role`, the role the migrations run as (`production.as_role`): in
/// production the migration tool's own history table belongs to that role,
/// which may not be allowed to create tables in `public` (PostgreSQL 15
/// and 18 grant PUBLIC no CREATE there).
pub async fn give_tracking_table(db: &Client, role: &str) -> Result<(), tokio_postgres::Error> {
    db.batch_execute(CREATE_DEFAULT_TABLE).await?;
    db.batch_execute(&format!("ALTER TABLE {DEFAULT_TABLE} OWNER TO {}", crate::sys::db::quote_ident(role))).await
}

/// What the scenario says of an SQL source besides its folder.
#[derive(Debug, Clone, Default)]
pub struct SqlOptions {
    /// `migrations.table`: production's history table (Flyway, golang-migrate, sqlx).
    pub table: Option<String>,
    /// `migrations.placeholders`: the values of Flyway's `${name}` placeholders.
    pub placeholders: BTreeMap<String, String>,
    /// The app's name when the scenario lists several sources.
    pub app: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SqlDir {
    /// Read pg_locks after each statement (off with `--no-observe`).
    pub exact_locks: bool,
    table: Option<String>,
    placeholders: BTreeMap<String, String>,
    app: Option<String>,
    folder: scan::Folder,
    /// Flyway's built-in placeholders, read from the session once, when the
    /// pending migrations are listed, so every script of the run sees the same.
    built_ins: OnceLock<BuiltIns>,
}

impl SqlDir {
    /// Lists the folder and its subfolders and orders the migration files;
    /// a bad name, a duplicate version, repeatable or callback, or an
    /// unknown placeholder is bad input.
    pub fn scan(dir: &Path, options: SqlOptions) -> Result<SqlDir> {
        let folder = scan::scan(dir, &options.placeholders)?;
        Ok(SqlDir {
            exact_locks: true,
            table: options.table,
            placeholders: options.placeholders,
            app: options.app,
            folder,
            built_ins: OnceLock::new(),
        })
    }

    /// The versioned migration files, in version order.
    pub fn files(&self) -> &[SqlFile] {
        &self.folder.versioned
    }

    /// Each versioned file's id and version as the history records it
    /// (`0003_add_x`, `3`): what two folders on one history must not share.
    pub fn versions(&self) -> Vec<(String, String)> {
        self.folder.versioned.iter().map(|f| (f.id(), files::normalize(&f.version))).collect()
    }

    /// Files the folder's names say are not applied (down and undo scripts,
    /// callbacks of events a rehearsal does not fire, files that are not
    /// SQL), each with its reason; `pending` adds the unchanged repeatables.
    pub fn skipped_at_scan(&self) -> &[SkippedFile] {
        &self.folder.skipped
    }

    /// `migrations.table`: production's history table, when the scenario names one.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// In Flyway's order: `beforeMigrate` callbacks, the versioned files not
    /// recorded in rehearse's tracking table nor in the table the scenario
    /// names, `afterVersioned`, then (when any) `beforeRepeatables` and the
    /// repeatables whose checksum differs from their latest recorded run,
    /// `afterMigrateApplied` when anything is pending, `afterMigrate`. The
    /// rest of the folder is in `skipped`, each file with its reason.
    pub async fn pending(&self, db: &Client) -> Result<Found> {
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the migration tracking table", e);
        db.batch_execute(CREATE_DEFAULT_TABLE).await.map_err(env)?;
        let history = History::read(db, self.table.as_deref(), self.app.as_deref()).await?;
        if let Some((table, version)) = &history.dirty {
            return Err(ErrorKind::MigrationsInvalid.error(format!(
                "tracking table {table} marks version {version} dirty (it failed part way in \
                 production): fix that database first, then re-take the dump"
            )));
        }
        let built_ins = self.built_ins(db).await?;
        let mut skipped = self.folder.skipped.clone();
        let versioned: Vec<&SqlFile> = self.folder.versioned.iter().filter(|f| !history.records(f)).collect();
        let mut repeatables = Vec::new();
        for file in &self.folder.repeatables {
            let text = read(file).map_err(|e| ErrorKind::MigrationsInvalid.error(e))?;
            let replaced = self.replace(file, &text, &built_ins);
            match history.unchanged(file, [flyway_checksum(&replaced), flyway_checksum(&text)]) {
                Some(reason) => skipped.push(SkippedFile { file: file.script.clone(), reason }),
                None => repeatables.push(file),
            }
        }
        let migrations = self.in_run_order(&versioned, &repeatables);
        let any = !migrations.iter().all(|m| m.kind == MigrationKind::Callback);
        skipped.extend(
            self.folder.callbacks.iter().filter_map(|c| not_fired(c, &migrations, any, !repeatables.is_empty())),
        );
        skipped.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(Found { migrations, skipped })
    }

    /// Where each script runs, in Flyway's `DbMigrate` order; the
    /// `beforeEachMigrate`/`afterEachMigrate` callbacks run inside each
    /// migration (`apply`), not as migrations of their own.
    fn in_run_order(&self, versioned: &[&SqlFile], repeatables: &[&SqlFile]) -> Vec<Migration> {
        let at = |event| self.folder.callbacks.iter().filter(move |c| c.role == Role::Callback(event));
        let mut order: Vec<&SqlFile> = at(Event::BeforeMigrate).collect();
        order.extend(versioned);
        order.extend(at(Event::AfterVersioned));
        if !repeatables.is_empty() {
            order.extend(at(Event::BeforeRepeatables));
            order.extend(repeatables);
        }
        if !versioned.is_empty() || !repeatables.is_empty() {
            order.extend(at(Event::AfterMigrateApplied));
        }
        order.extend(at(Event::AfterMigrate));
        order.into_iter().map(migration).collect()
    }

    /// The files the database records as applied (by id), and a `dirty`
    /// line when golang-migrate's table says a version failed part way:
    /// what a race is judged by. Repeatables count once any run of them is
    /// recorded. Reads only: nothing is created.
    pub async fn applied(&self, db: &Client) -> Result<Vec<String>> {
        let history = History::read(db, self.table.as_deref(), self.app.as_deref()).await?;
        let versioned = self.folder.versioned.iter().filter(|f| history.records(f));
        let repeatables = self.folder.repeatables.iter().filter(|f| history.knows_repeatable(f));
        let mut out: Vec<String> = versioned.chain(repeatables).map(|f| f.id()).collect();
        if let Some((table, version)) = history.dirty {
            out.push(format!("{table}: version {version} dirty"));
        }
        Ok(out)
    }

    /// Applies one file, placeholders replaced: in one transaction (with the
    /// `beforeEachMigrate`/`afterEachMigrate` callbacks, as Flyway runs
    /// them), unless it holds a statement that cannot run in one or manages
    /// its own transactions.
    pub async fn apply(&self, migration: &Migration, target: &Target<'_>) -> Applied {
        let started = Instant::now();
        match self.script(migration, target).await {
            Ok(script) => run::apply(target, self.exact_locks, script, started).await,
            Err(message) => {
                Applied { error: Some(MigrationError::new(message)), duration: started.elapsed(), ..Applied::default() }
            }
        }
    }

    /// The statements' sources for `migration`, and what records it.
    async fn script(&self, migration: &Migration, target: &Target<'_>) -> std::result::Result<run::Script, String> {
        let all = || self.folder.versioned.iter().chain(&self.folder.repeatables).chain(&self.folder.callbacks);
        let file = all()
            .find(|f| migration.file.as_ref() == Some(&f.path))
            .ok_or_else(|| format!("{} is not a migration of this folder: rehearse lost track of it", migration.id))?;
        let built_ins = self.built_ins(target.client).await.map_err(|e| e.with_causes())?;
        let each = |event| self.folder.callbacks.iter().filter(move |c| c.role == Role::Callback(event));
        let mut files: Vec<&SqlFile> = Vec::new();
        let around = !matches!(file.role, Role::Callback(_));
        if around {
            files.extend(each(Event::BeforeEachMigrate));
        }
        files.push(file);
        if around {
            files.extend(each(Event::AfterEachMigrate));
        }
        let mut parts = Vec::new();
        for f in files {
            let text = self.replace(f, &read(f)?, &built_ins);
            parts.push(run::Part { path: f.path.clone(), text, main: std::ptr::eq(f, file) });
        }
        let name = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
        let record = match file.role {
            Role::Versioned => Some(run::Record {
                key: own_key(self.app.as_deref(), &file.normalized_version()),
                name: name(&file.script),
                checksum: None,
            }),
            Role::Repeatable => Some(run::Record {
                key: own_key(self.app.as_deref(), &repeatable_key(&file.script)),
                name: file.script.clone(),
                checksum: parts.iter().find(|p| p.main).map(|p| flyway_checksum(&p.text)),
            }),
            // Flyway runs callbacks on every migrate and records none.
            Role::Callback(_) => None,
        };
        Ok(run::Script { parts, record })
    }

    /// `text` of `file` with its placeholders replaced.
    fn replace(&self, file: &SqlFile, text: &str, built_ins: &BuiltIns) -> String {
        let filename = file.script.rsplit('/').next().unwrap_or(&file.script);
        placeholders::replace(text, |name| built_ins.value(name, filename, &self.placeholders))
    }

    /// Flyway's built-in placeholders for this rehearsal (read once).
    async fn built_ins(&self, db: &Client) -> Result<BuiltIns> {
        if let Some(b) = self.built_ins.get() {
            return Ok(b.clone());
        }
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the session's user, database and schema", e);
        let row = db
            .query_one(
                "SELECT session_user::text, current_database()::text, coalesce(current_schema()::text, 'public'), \
                 to_char(now(), 'YYYY-MM-DD HH24:MI:SS')",
                &[],
            )
            .await
            .map_err(env)?;
        let (schema, table) = placeholders::split_table(self.table.as_deref());
        let b = BuiltIns {
            default_schema: schema.unwrap_or_else(|| row.get(2)),
            user: row.get(0),
            database: row.get(1),
            timestamp: row.get(3),
            working_directory: std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
            table,
        };
        Ok(self.built_ins.get_or_init(|| b).clone())
    }
}

/// The callback `c` when Flyway would not fire its event in this run
/// (nothing pending, or no repeatable pending), with the reason.
fn not_fired(c: &SqlFile, run: &[Migration], any_pending: bool, repeatables: bool) -> Option<SkippedFile> {
    let Role::Callback(event) = c.role else { return None };
    let fired = if event.around_each() { any_pending } else { run.iter().any(|m| m.file.as_ref() == Some(&c.path)) };
    let nothing =
        if event == Event::BeforeRepeatables && !repeatables { "no repeatable migration" } else { "no migration" };
    (!fired).then(|| SkippedFile {
        file: c.script.clone(),
        reason: format!(
            "callback for Flyway's {} event: {nothing} is pending, so Flyway would not fire it",
            event.id()
        ),
    })
}

/// The report's entry for a file: callbacks named after their event.
fn migration(f: &SqlFile) -> Migration {
    let (version, description) = match f.role {
        Role::Versioned => (f.normalized_version(), f.description.clone()),
        Role::Repeatable => (String::new(), f.description.clone()),
        Role::Callback(event) if f.description.is_empty() => (String::new(), format!("callback {}", event.id())),
        Role::Callback(event) => (String::new(), format!("callback {}: {}", event.id(), f.description)),
    };
    Migration { id: f.id(), version, description, file: Some(f.path.clone()), kind: f.kind(), ..Migration::default() }
}

/// A script's text, as the error of its migration says when it cannot be read.
fn read(file: &SqlFile) -> std::result::Result<String, String> {
    std::fs::read_to_string(&file.path).map_err(|e| format!("cannot read {}: {e}", file.path.display()))
}
