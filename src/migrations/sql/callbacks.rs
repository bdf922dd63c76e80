//! Flyway's callback events (`org.flywaydb.core.api.callback.Event`): the
//! ones a rehearsal of `migrate` runs, in the order Flyway's `DbMigrate`
//! fires them, and the others, whose scripts are listed as not run.

/// An event of Flyway's `migrate` whose SQL callbacks rehearse runs.
/// The order is Flyway's: `beforeMigrate`; around every migration
/// `beforeEachMigrate` and `afterEachMigrate` (in its transaction);
/// `afterVersioned` once the versioned ones are applied;
/// `beforeRepeatables` before the first repeatable; `afterMigrateApplied`
/// when at least one migration was applied; `afterMigrate` last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    BeforeMigrate,
    BeforeEachMigrate,
    AfterEachMigrate,
    AfterVersioned,
    BeforeRepeatables,
    AfterMigrateApplied,
    AfterMigrate,
}

const RUN: [(Event, &str); 7] = [
    (Event::BeforeMigrate, "beforeMigrate"),
    (Event::BeforeEachMigrate, "beforeEachMigrate"),
    (Event::AfterEachMigrate, "afterEachMigrate"),
    (Event::AfterVersioned, "afterVersioned"),
    (Event::BeforeRepeatables, "beforeRepeatables"),
    (Event::AfterMigrateApplied, "afterMigrateApplied"),
    (Event::AfterMigrate, "afterMigrate"),
];

/// Flyway's other events: failures, statement-level hooks (Teams edition),
/// and the other commands (undo, clean, validate, baseline, repair, info).
const NOT_RUN: [&str; 32] = [
    "afterEachMigrateError",
    "afterMigrateError",
    "beforeEachMigrateStatement",
    "afterEachMigrateStatement",
    "afterEachMigrateStatementError",
    "afterMigrateOperationFinish",
    "beforeUndo",
    "beforeEachUndo",
    "beforeEachUndoStatement",
    "afterEachUndoStatement",
    "afterEachUndoStatementError",
    "afterEachUndo",
    "afterEachUndoError",
    "afterUndo",
    "afterUndoError",
    "beforeClean",
    "afterClean",
    "afterCleanError",
    "beforeValidate",
    "afterValidate",
    "afterValidateError",
    "beforeBaseline",
    "afterBaseline",
    "afterBaselineError",
    "beforeRepair",
    "afterRepair",
    "afterRepairError",
    "beforeInfo",
    "afterInfo",
    "afterInfoError",
    "createSchema",
    "beforeConnect",
];

impl Event {
    /// The event's id, as callback files are named (`afterMigrate`).
    pub fn id(self) -> &'static str {
        RUN.iter().find(|(e, _)| *e == self).map(|(_, id)| *id).unwrap_or_default()
    }

    pub fn from_id(id: &str) -> Option<Event> {
        RUN.iter().find(|(_, name)| *name == id).map(|(e, _)| *e)
    }

    /// Whether its callbacks run inside each migration's transaction
    /// rather than as migrations of their own.
    pub fn around_each(self) -> bool {
        matches!(self, Event::BeforeEachMigrate | Event::AfterEachMigrate)
    }
}

/// Why a script named after one of Flyway's other events is not run, or
/// None when `id` is no Flyway event.
pub fn not_run(id: &str) -> Option<String> {
    NOT_RUN.contains(&id).then(|| format!("callback for Flyway's {id} event: not run by a rehearsal of migrate"))
}

/// The ids of the events rehearse runs callbacks of, for error messages.
pub fn run_ids() -> impl Iterator<Item = &'static str> {
    RUN.iter().map(|(_, id)| *id)
}
