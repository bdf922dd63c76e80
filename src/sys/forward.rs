//! A relay from a unix socket to a server reached over TCP (or another unix
//! socket): how a migration tool in a network namespace of its own
//! (`netns`) reaches the throwaway database on a server it could not
//! otherwise reach. The socket is `.s.PGSQL.<port>` in a private temp dir
//! (0700), the name libpq, psycopg and every driver built on them look for
//! when the host is a directory.
//!
//! When the server is shared with other databases (the url and clone
//! backends), the relay reads each connection's opening messages (Frontend/
//! Backend Protocol, "Message Formats"): an SSLRequest or GSSENCRequest is
//! answered 'N' (the relay must read what follows, so no encryption on the
//! unix socket, which never leaves this machine); a CancelRequest passes
//! through; a StartupMessage for a database other than the rehearsal's is
//! refused with an ErrorResponse (SQLSTATE 28000), before the server hears
//! of it. Each relay stops, and its connections with it, when dropped.
//!
//! To a TCP upstream the relay speaks TLS itself, with the server's own
//! settings (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`: `Tls::negotiate`):
//! a server that accepts only TLS (`hostssl` in pg_hba.conf, a managed
//! platform's force_ssl) is reached by a tool that cannot ask for it over
//! the unix socket.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::tls::{Negotiated, Tls};

/// The opening codes that share a StartupMessage's framing (length, then
/// an Int32 in place of the protocol version).
const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;
const CANCEL_REQUEST: i32 = 80877102;
/// The server's own limit on a startup packet (MAX_STARTUP_PACKET_LENGTH).
const MAX_STARTUP: usize = 10_000;

/// Where the relay connects for each client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    Tcp {
        host: String,
        port: u16,
    },
    /// A server's socket file (`<dir>/.s.PGSQL.<port>`).
    Unix(PathBuf),
}

/// A running relay: its socket directory, removed when dropped.
#[derive(Debug)]
pub struct Relay {
    dir: tempfile::TempDir,
    port: u16,
    stop: CancellationToken,
}

impl Relay {
    /// Listens on `<private dir>/.s.PGSQL.<port>` and relays each connection
    /// to `upstream`; with `only`, connections to any other database are
    /// refused. `tls`: how the relay reaches a TCP upstream (the server's
    /// own TLS settings: its client speaks plain on the unix socket). Needs
    /// a tokio runtime.
    pub fn start(upstream: Upstream, port: u16, only: Option<String>, tls: Tls) -> std::io::Result<Relay> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("rehearse-relay-").tempdir()?;
        // Private whatever the umask: the socket leads to a copy of production.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let listener = UnixListener::bind(dir.path().join(format!(".s.PGSQL.{port}")))?;
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, upstream, only, tls, stop.clone()));
        Ok(Relay { dir, port, stop })
    }

    /// The directory to give a client as its host.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The port in the socket's name, to give a client as its port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: UnixListener, upstream: Upstream, only: Option<String>, tls: Tls, stop: CancellationToken) {
    loop {
        let client = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                // A client that went away before it was accepted; the listener stands.
                Err(_) => continue,
            },
            _ = stop.cancelled() => return,
        };
        let (upstream, only, stop, tls) = (upstream.clone(), only.clone(), stop.clone(), tls.clone());
        tokio::spawn(async move {
            tokio::select! {
                // The relay's errors end the client's connection; the client reports it.
                _ = serve(client, &upstream, only.as_deref(), &tls) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// One client: its opening read (when the server is shared), then bytes
/// both ways until either side closes.
async fn serve(mut client: UnixStream, upstream: &Upstream, only: Option<&str>, tls: &Tls) -> std::io::Result<()> {
    let opening = match only {
        None => Vec::new(),
        Some(database) => match read_opening(&mut client).await? {
            Opening::Cancel(bytes) => bytes,
            Opening::Startup { bytes, params } => match refusal(&params, database) {
                None => bytes,
                Some(message) => {
                    client.write_all(&error_response("28000", &message)).await?;
                    return client.shutdown().await;
                }
            },
        },
    };
    match upstream {
        Upstream::Tcp { host, port } => {
            let server = TcpStream::connect((host.as_str(), *port)).await?;
            match tls.negotiate(server, host).await? {
                Negotiated::Tls(server) => pipe(client, server, &opening).await,
                Negotiated::Plain(server) => pipe(client, server, &opening).await,
            }
        }
        Upstream::Unix(path) => pipe(client, UnixStream::connect(path).await?, &opening).await,
    }
}

async fn pipe<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: UnixStream,
    mut server: S,
    opening: &[u8],
) -> std::io::Result<()> {
    server.write_all(opening).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await.map(|_| ())
}

/// A connection's first message that is not an encryption request.
#[derive(Debug, PartialEq)]
enum Opening {
    /// The StartupMessage as read (to pass on), and its parameters.
    Startup {
        bytes: Vec<u8>,
        params: Vec<(String, String)>,
    },
    Cancel(Vec<u8>),
}

async fn read_opening(client: &mut UnixStream) -> std::io::Result<Opening> {
    loop {
        let len = client.read_i32().await?;
        let len =
            usize::try_from(len).ok().filter(|l| (8..=MAX_STARTUP).contains(l)).ok_or_else(|| invalid("length"))?;
        let mut bytes = vec![0u8; len];
        bytes[..4].copy_from_slice(&(len as i32).to_be_bytes());
        client.read_exact(&mut bytes[4..]).await?;
        let code = i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        match code {
            // No encryption: the relay must read the StartupMessage that follows.
            SSL_REQUEST | GSSENC_REQUEST => client.write_all(b"N").await?,
            CANCEL_REQUEST => return Ok(Opening::Cancel(bytes)),
            _ => {
                let params = startup_params(&bytes[8..]).ok_or_else(|| invalid("parameters"))?;
                return Ok(Opening::Startup { bytes, params });
            }
        }
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("invalid startup packet {what}"))
}

/// A StartupMessage's parameters: name and value strings, each ended by a
/// zero byte, then a zero byte.
fn startup_params(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut strings = body.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
    let mut params = Vec::new();
    loop {
        let name = strings.next()?;
        if name.is_empty() {
            return Some(params);
        }
        params.push((name, strings.next()?));
    }
}

/// Why a connection with `params` is refused, when the only database it
/// may reach is `database`: another database (`database` defaults to the
/// user name, as the server reads it), or a replication connection (a
/// physical one streams every database of the server).
fn refusal(params: &[(String, String)], database: &str) -> Option<String> {
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let asked = get("database").filter(|d| !d.is_empty()).or(get("user")).unwrap_or("");
    if asked != database {
        return Some(format!(
            "rehearse lets the migration tool reach only the rehearsal's database {database}; it asked for {asked}"
        ));
    }
    match get("replication").map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "off" | "no" | "0") => None,
        Some(_) => Some(format!(
            "rehearse lets the migration tool reach only the rehearsal's database {database}; it asked for a \
             replication connection"
        )),
    }
}

/// An ErrorResponse of severity FATAL, as the server sends one before it closes.
fn error_response(sqlstate: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', sqlstate), (b'M', message)] {
        fields.push(code);
        fields.extend(value.bytes().filter(|b| *b != 0));
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend(((fields.len() + 4) as i32).to_be_bytes());
    out.extend(fields);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = 196608i32.to_be_bytes().to_vec();
        for (n, v) in params {
            body.extend(n.bytes().chain([0]).chain(v.bytes()).chain([0]));
        }
        body.push(0);
        let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    #[test]
    fn only_the_rehearsals_database_passes() {
        let params = |p: &[(&str, &str)]| startup_params(&startup(p)[8..]).unwrap();
        assert_eq!(refusal(&params(&[("user", "u"), ("database", "rehearse_1")]), "rehearse_1"), None);
        let other = refusal(&params(&[("user", "u"), ("database", "postgres")]), "rehearse_1").unwrap();
        assert!(other.ends_with("only the rehearsal's database rehearse_1; it asked for postgres"), "{other}");
        // No database: the server takes the user name.
        assert!(refusal(&params(&[("user", "rehearse_1")]), "rehearse_1").is_none());
        assert!(refusal(&params(&[("user", "app")]), "rehearse_1").unwrap().ends_with("asked for app"));
        assert!(refusal(&params(&[("user", "u"), ("database", "rehearse_1"), ("replication", "true")]), "rehearse_1")
            .unwrap()
            .contains("replication"));
        let off = params(&[("user", "u"), ("database", "rehearse_1"), ("replication", "off")]);
        assert!(refusal(&off, "rehearse_1").is_none());
    }

    #[test]
    fn a_truncated_startup_message_has_no_parameters() {
        assert_eq!(startup_params(b"user\0u\0database"), None);
        assert_eq!(startup_params(b"\0"), Some(Vec::new()));
    }

    #[test]
    fn the_error_response_is_framed_as_the_server_frames_one() {
        let e = error_response("28000", "no");
        assert_eq!(e[0], b'E');
        assert_eq!(i32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize, e.len() - 1);
        assert_eq!(&e[5..], b"SFATAL\0VFATAL\0C28000\0Mno\0\0");
    }

    /// Through a real socket pair: an SSLRequest is answered 'N', then the
    /// StartupMessage that follows is read whole.
    #[tokio::test]
    async fn an_ssl_request_is_declined_and_the_startup_that_follows_is_read() {
        let (mut client, mut relay_side) = UnixStream::pair().unwrap();
        let message = startup(&[("user", "u"), ("database", "d")]);
        let mut sent = [8i32.to_be_bytes(), SSL_REQUEST.to_be_bytes()].concat();
        sent.extend(&message);
        client.write_all(&sent).await.unwrap();
        let opening = read_opening(&mut relay_side).await.unwrap();
        let mut answer = [0u8; 1];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"N");
        let params = vec![("user".to_string(), "u".to_string()), ("database".to_string(), "d".to_string())];
        assert_eq!(opening, Opening::Startup { bytes: message, params });
    }
}
