//! Racing replicas (`race:`): N copies of the migration tool's full upgrade
//! started at once on a fresh copy of the restored database, as an app's
//! replicas run it at start-up; watched (advisory locks, sessions, who
//! blocks whom), bounded by a deadline, and judged against the sequential
//! rehearsal's final state. `barrier.rs` holds the copies until they have
//! all reached the database, `launch.rs` starts one copy, `watch.rs` reads
//! the server while they run, `hang.rs` explains a wait that never ends,
//! `verdict.rs` compares and judges, `stage.rs` runs it all.

mod barrier;
mod hang;
mod launch;
mod stage;
mod verdict;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use launch::{launch, CopyExit, Invocation};
pub use stage::{race, RaceInputs};

use crate::migrations::launch::Launch;
use crate::migrations::network::ToolNetwork;
use crate::migrations::{alembic, database_url, expand_placeholders, tool_env, Driver};
use crate::sys::db::ConnInfo;

/// The scenario's `race:`, resolved.
#[derive(Debug, Clone)]
pub struct RacePlan {
    pub replicas: usize,
    pub command: CopyCommand,
    /// Each copy starts after a random delay in 0..jitter.
    pub jitter: Duration,
    /// `race.timeout`; None: 10 × the sequential rehearsal, at least [`MIN_TIMEOUT`].
    pub timeout: Option<Duration>,
    pub kill_one: bool,
}

/// The shortest default deadline: a sequential rehearsal of a second must
/// still leave the copies time to start their interpreters.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(30);

impl RacePlan {
    /// The race's deadline, given how long the sequential rehearsal took.
    pub fn deadline(&self, sequential: Duration) -> Duration {
        self.timeout.unwrap_or_else(|| (sequential * 10).max(MIN_TIMEOUT))
    }
}

/// What each replica runs at start-up, where, and with which environment.
#[derive(Debug, Clone)]
pub struct CopyCommand {
    pub program: Program,
    /// The migration tool's working directory.
    pub dir: PathBuf,
    /// `migrations.env` (`{url}` and `{sqlalchemy_url}` replaced for each copy).
    pub env: Vec<(String, String)>,
    /// The driver the user named (`migrations.driver`, DATABASE_URL's): cli.py's
    /// choice for Alembic; for a shell command, what `{sqlalchemy_url}` names.
    pub driver: Option<Driver>,
    /// Here, or in the app's image (`migrations.image`, `migrations.job`), as the migrations ran.
    pub launch: Launch,
}

#[derive(Debug, Clone)]
pub enum Program {
    /// `alembic upgrade <target>`, run by the project's interpreter with
    /// the copy's database as sqlalchemy.url (`alembic::upgrade_command`).
    Alembic { python: PathBuf, config: PathBuf, target: String },
    /// `race.command`, through `sh -c`; `{url}` is the copy's database URL
    /// without the password (DATABASE_URL and PGPASSWORD carry it).
    Shell(String),
}

impl CopyCommand {
    /// The command as the report shows it.
    pub fn shown(&self) -> String {
        match &self.program {
            Program::Alembic { target, .. } => format!("alembic upgrade {target}"),
            Program::Shell(script) => script.clone(),
        }
    }

    /// The command line and environment of one copy: the tool's own
    /// environment, with DATABASE_URL and the PG* variables naming the race's
    /// database `db` (as the copy reaches it: `ToolNetwork::reachable`) and
    /// `application_name` telling the copy's sessions apart.
    pub fn for_copy(&self, db: &ConnInfo, application_name: &str, network: &ToolNetwork) -> Invocation {
        let url = database_url(db, Some(&db.current_password()), application_name);
        let driver = match &self.program {
            // cli.py chooses the driver, and replaces {sqlalchemy_url} with it.
            Program::Alembic { .. } => None,
            Program::Shell(_) => self.driver.as_ref().map(|d| d.name.as_str()),
        };
        let mut env = expand_placeholders(&self.env, &url, driver);
        env.extend(tool_env(db, application_name));
        let argv = match &self.program {
            Program::Alembic { python, config, target } => {
                if let Some(d) = &self.driver {
                    env.push(("REHEARSE_ALEMBIC_DRIVER".into(), d.name.clone()));
                    env.push(("REHEARSE_ALEMBIC_DRIVER_FROM".into(), d.said_in.clone()));
                }
                env.push(alembic::url_env(url));
                alembic::upgrade_command(python, config, target)
            }
            Program::Shell(script) => {
                let script = script.replace("{url}", &database_url(db, None, application_name));
                vec!["/bin/sh".into(), "-c".into(), script]
            }
        };
        Invocation { argv, dir: self.dir.clone(), env, launch: self.launch.clone(), network: network.clone() }
    }
}
