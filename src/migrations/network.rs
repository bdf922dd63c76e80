//! What the migration tool can reach, for one run: every process of the
//! tool (Alembic's helper, a command's `list` and `apply`, race copies,
//! drift builds) is started here, and reaches the throwaway database by the
//! address given here.
//!
//! Launched on this machine with `migrations.network: isolated` (the
//! default), a tool runs in a network namespace of its own (`sys::netns`):
//! no TCP reaches anything, so a URL to another server in its configuration
//! fails to connect. It reaches the copy through a unix socket: the local
//! backend's own socket directory, or a relay (`sys::forward`) to the
//! server rehearse reaches over TCP. On a server shared with other
//! databases (url and clone backends), that relay lets through connections
//! to the rehearsal's databases only. Whatever the network, variables of
//! rehearse's environment that name a database are not inherited
//! (`isolation.rs`).
//!
//! On the host's network (the app's image, `network: host`, or a machine
//! that gives no namespace) the tool could reach other servers; the report
//! says so, and rehearse relies on its checks instead.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::isolation;
use super::launch::{Container, Launch, Network};
use crate::error::{Error, Result};
use crate::report::{IsolationInfo, MigrationError, ToolNetworkKind};
use crate::sys::db::ConnInfo;
use crate::sys::forward::{Relay, Upstream};
use crate::sys::netns::{self, Unshare};
use crate::sys::process::ChildCommand;

/// Why a tool in the app's image runs on the host's network.
const IMAGE_ON_HOST: &str = "the tool runs in the app's image with `docker run --network host`: the container reaches \
                             the throwaway server on the host's loopback";

/// How the system refuses a TCP connection from a network namespace with no interface up.
const UNREACHABLE: &str = "Network is unreachable";
const UNREACHABLE_HINT: &str = "the migration tool tried to connect over TCP, and its network namespace stopped it \
     (\"Network is unreachable\"): it reaches only the throwaway copy, through DATABASE_URL, the PG* variables, \
     sqlalchemy.url or {url} / {sqlalchemy_url} in migrations.env. If it connects through settings of its own, give \
     them the copy in migrations.env (e.g. AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: \"{sqlalchemy_url}\"); if it must \
     reach another host on purpose, set migrations.network: host";

/// The run's tool network: the namespace, the relays, what was cleared.
/// Cloned into the race's copies; the relays stop when it is closed.
#[derive(Debug, Clone)]
pub struct ToolNetwork(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// How a child enters a namespace, or why this machine gives none.
    namespace: std::result::Result<Unshare, String>,
    /// The server holds other databases (url and clone backends): relays refuse them.
    shared: bool,
    /// Keyed by where they lead and the one database they let through.
    relays: Mutex<HashMap<(Upstream, Option<String>), Relay>>,
    /// Whether a tool reached the server through a relay.
    forwarded: AtomicBool,
    /// Names cleared from a tool's environment, over the run.
    cleared: Mutex<BTreeSet<String>>,
}

impl ToolNetwork {
    /// For a run on a server that is `shared` with other databases (or
    /// not): asks once whether this machine gives network namespaces.
    pub fn new(shared: bool) -> ToolNetwork {
        let namespace = netns::available().map(|()| Unshare::for_caller());
        ToolNetwork(Arc::new(Inner {
            namespace,
            shared,
            relays: Mutex::default(),
            forwarded: AtomicBool::default(),
            cleared: Mutex::default(),
        }))
    }

    /// As on a machine that gives no namespace, for `why`.
    #[cfg(test)]
    fn without_namespace(why: &str) -> ToolNetwork {
        let network = ToolNetwork::new(false);
        let mut inner = Arc::into_inner(network.0).expect("not shared yet");
        inner.namespace = Err(why.into());
        ToolNetwork(Arc::new(inner))
    }

    /// Whether a tool launched by `launch` runs in a namespace of its own.
    pub fn isolates(&self, launch: &Launch) -> bool {
        matches!(launch, Launch::Here(Network::Isolated)) && self.0.namespace.is_ok()
    }

    /// Why a tool launched by `launch` runs on the host's network; None: it does not.
    fn on_host_because(&self, launch: &Launch) -> Option<String> {
        match (launch, &self.0.namespace) {
            (Launch::Image(_), _) => Some(IMAGE_ON_HOST.into()),
            (Launch::Here(Network::Host), _) => Some("migrations.network: host".into()),
            (Launch::Here(Network::Isolated), Err(why)) => {
                Some(format!("this machine gives no network namespace ({why})"))
            }
            (Launch::Here(Network::Isolated), Ok(_)) => None,
        }
    }

    /// The throwaway database `conn` as a tool launched by `launch` reaches
    /// it: in a namespace, a unix socket directory (the server's own, or a
    /// relay's); otherwise as `Launch::reachable` says.
    pub fn reachable(&self, launch: &Launch, conn: &ConnInfo) -> Result<ConnInfo> {
        if !self.isolates(launch) {
            return Ok(launch.reachable(conn));
        }
        let socket_dir = conn.host.starts_with('/');
        if socket_dir && !self.0.shared {
            return Ok(conn.clone());
        }
        let upstream = match socket_dir {
            true => Upstream::Unix(Path::new(&conn.host).join(format!(".s.PGSQL.{}", conn.port))),
            false => Upstream::Tcp { host: conn.host.clone(), port: conn.port },
        };
        let only = self.0.shared.then(|| conn.dbname.clone());
        let mut relays = self.0.relays.lock().unwrap_or_else(|e| e.into_inner());
        let relay = match relays.entry((upstream.clone(), only.clone())) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Relay::start(upstream, conn.port, only, conn.tls.clone()).map_err(|e| {
                Error::environment_because(
                    format!(
                        "cannot start the relay through which the migration tool, in a network namespace of its own, \
                         reaches {}: check that TMPDIR is writable, or set migrations.network: host",
                        conn.masked(&conn.dbname)
                    ),
                    e,
                )
            })?),
        };
        self.0.forwarded.store(true, Ordering::Relaxed);
        // The relay speaks TLS to the server (`sys::forward`); the tool's side is a plain unix socket.
        let tls = crate::sys::tls::Tls::disabled();
        Ok(ConnInfo { host: relay.dir().display().to_string(), port: relay.port(), tls, ..conn.clone() })
    }

    /// `program args` as `launch` runs it (see `Launch::command`), without
    /// the inherited variables that name a database (`env`'s names are kept:
    /// rehearse's own and `migrations.env`'s), in a namespace when isolated.
    pub fn command(
        &self,
        launch: &Launch,
        program: &str,
        args: &[String],
        env: &[(String, String)],
        dir: &Path,
    ) -> (ChildCommand, Option<Container>) {
        let (mut cmd, container) = launch.command(program, args, env, dir);
        let kept: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        let cleared: Vec<OsString> = isolation::to_clear(std::env::vars_os(), &kept);
        self.0
            .cleared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(cleared.iter().map(|n| n.to_string_lossy().into_owned()));
        for name in cleared {
            cmd = cmd.env_remove(name);
        }
        if let (true, Ok(how)) = (self.isolates(launch), &self.0.namespace) {
            cmd = cmd.network_namespace(how.clone());
        }
        (cmd, container)
    }

    /// What a tool's failure means when its output shows a TCP connection
    /// its namespace stopped ("Network is unreachable", as the system says
    /// it to a process with no network): None otherwise.
    pub fn unreachable_hint(&self, launch: &Launch, output: &str) -> Option<&'static str> {
        (self.isolates(launch) && output.contains(UNREACHABLE)).then_some(UNREACHABLE_HINT)
    }

    /// A failed migration's error, with [`unreachable_hint`](Self::unreachable_hint) added when it applies.
    pub fn explain(&self, launch: &Launch, error: &mut Option<MigrationError>) {
        if let Some(e) = error {
            if let Some(hint) = self.unreachable_hint(launch, &e.message) {
                e.message = format!("{}\n\n{hint}", e.message);
            }
        }
    }

    /// What the report says of the network of the tools `launches` start
    /// (None when no tool runs: SQL files rehearse applies itself): the
    /// host's when any of them is on it, with the first one's reason.
    pub fn facts(&self, launches: &[&Launch]) -> Option<IsolationInfo> {
        if launches.is_empty() {
            return None;
        }
        let why = launches.iter().find_map(|l| self.on_host_because(l));
        Some(IsolationInfo {
            network: match why {
                Some(_) => ToolNetworkKind::Host,
                None => ToolNetworkKind::Namespace,
            },
            why,
            forwarded: self.0.forwarded.load(Ordering::Relaxed),
            cleared_env: self.0.cleared.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect(),
        })
    }

    /// Stops every relay (a tool still connected through one is cut off).
    pub fn close(&self) {
        self.0.relays.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::launch::ImageLaunch;

    fn image() -> Launch {
        Launch::Image(Box::new(ImageLaunch { image: "app:1".into(), workdir: None, pull: false, job: None }))
    }

    #[test]
    fn the_report_says_host_and_why_when_any_tool_is_on_the_hosts_network() {
        let network = ToolNetwork::new(false);
        let isolated = Launch::Here(Network::Isolated);
        assert_eq!(network.facts(&[]), None, "no tool, nothing to say");
        let facts = network.facts(&[&isolated, &Launch::Here(Network::Host)]).unwrap();
        assert_eq!((facts.network, facts.why.as_deref()), (ToolNetworkKind::Host, Some("migrations.network: host")));
        let facts = network.facts(&[&image()]).unwrap();
        assert!(facts.why.as_deref().is_some_and(|w| w.contains("--network host")), "{facts:?}");
        assert!(!network.isolates(&image()), "the app's image is never isolated");
        let facts = network.facts(&[&isolated]).unwrap();
        match netns::available() {
            Ok(()) => assert_eq!((facts.network, facts.why), (ToolNetworkKind::Namespace, None)),
            Err(_) => assert!(facts.why.is_some_and(|w| w.contains("no network namespace"))),
        }
    }

    /// Where the machine gives no namespace, an isolated tool falls back to
    /// the host's network, reaches the server as rehearse does, and the
    /// report says why; its environment is still cleared.
    #[tokio::test]
    async fn without_a_namespace_the_tool_falls_back_to_the_hosts_network_and_says_why() {
        let network = ToolNetwork::without_namespace("Operation not permitted");
        let isolated = Launch::Here(Network::Isolated);
        assert!(!network.isolates(&isolated));
        let conn = ConnInfo { host: "127.0.0.1".into(), ..local_conn() };
        assert_eq!(network.reachable(&isolated, &conn).unwrap().host, "127.0.0.1", "no relay");
        let facts = network.facts(&[&isolated]).unwrap();
        assert_eq!(facts.network, ToolNetworkKind::Host);
        assert_eq!(facts.why.as_deref(), Some("this machine gives no network namespace (Operation not permitted)"));
        assert!(!facts.forwarded);
        // The child runs where rehearse does: its network namespace is ours.
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap().display().to_string();
        let (cmd, _) = network.command(&isolated, "readlink", &["/proc/self/ns/net".to_string()], &[], Path::new("/"));
        let out = cmd.run(&tokio_util::sync::CancellationToken::new()).await.unwrap();
        assert_eq!(out.stdout.trim(), ours);
    }

    /// With a namespace, the tool's process is in one of its own.
    #[tokio::test]
    async fn an_isolated_tool_runs_in_a_network_namespace_of_its_own() {
        let network = ToolNetwork::new(false);
        let isolated = Launch::Here(Network::Isolated);
        if !network.isolates(&isolated) {
            eprintln!("skipped: no network namespace here");
            return;
        }
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap().display().to_string();
        let (cmd, _) = network.command(&isolated, "readlink", &["/proc/self/ns/net".to_string()], &[], Path::new("/"));
        let out = cmd.run(&tokio_util::sync::CancellationToken::new()).await.unwrap();
        assert_ne!(out.stdout.trim(), ours);
        let (cmd, _) = network.command(
            &Launch::Here(Network::Host),
            "readlink",
            &["/proc/self/ns/net".to_string()],
            &[],
            Path::new("/"),
        );
        let out = cmd.run(&tokio_util::sync::CancellationToken::new()).await.unwrap();
        assert_eq!(out.stdout.trim(), ours, "network: host runs where rehearse does");
    }

    fn local_conn() -> ConnInfo {
        ConnInfo {
            host: "/tmp/rehearse-x".into(),
            port: 5432,
            user: "rehearse".into(),
            password: crate::sys::db::Secret::generate(),
            dbname: "rehearse".into(),
            admin_dbname: "postgres".into(),
            tls: Default::default(),
            password_command: None,
        }
    }

    #[test]
    fn in_the_namespace_the_local_servers_socket_directory_is_reached_as_it_is() {
        let network = ToolNetwork::new(false);
        let conn = local_conn();
        let reached = network.reachable(&Launch::Here(Network::Isolated), &conn).unwrap();
        assert_eq!((reached.host.as_str(), reached.port), ("/tmp/rehearse-x", 5432));
        assert!(!network.facts(&[&Launch::Here(Network::Isolated)]).unwrap().forwarded);
    }
}
