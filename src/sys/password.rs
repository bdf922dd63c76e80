//! Where a password comes from when the connection string has none:
//! `password_command` (run before each connection: cloud tokens expire in
//! minutes), or libpq's password file (`PGPASSFILE`, else `~/.pgpass`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::db::Secret;

/// A shell command whose stdout (trimmed) is the password. Its text and
/// output are never shown: Debug names only the key it came from.
#[derive(Clone)]
pub struct PasswordCommand {
    command: std::sync::Arc<str>,
    /// The scenario key or flag it came from, for messages.
    pub key: std::sync::Arc<str>,
    /// The passwords it printed (the last [`REMEMBERED`]), for tools' output to be redacted of.
    printed: std::sync::Arc<std::sync::Mutex<Vec<Secret>>>,
}

/// How many of a command's passwords are kept to redact tools' output of.
const REMEMBERED: usize = 256;

impl PartialEq for PasswordCommand {
    fn eq(&self, other: &Self) -> bool {
        (&self.command, &self.key) == (&other.command, &other.key)
    }
}

impl Eq for PasswordCommand {}

impl std::fmt::Debug for PasswordCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordCommand({})", self.key)
    }
}

/// Why a `password_command` gave no password: its key and exit status, never its output.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{key}: the password command {why}: check it runs on this machine and prints the password")]
pub struct PasswordCommandFailed {
    pub key: String,
    why: String,
}

impl PasswordCommand {
    pub fn new(command: String, key: impl Into<String>) -> PasswordCommand {
        PasswordCommand { command: command.into(), key: key.into().into(), printed: Default::default() }
    }

    /// Runs it (`sh -c`, stdin closed, at most 60 s) and returns its trimmed
    /// stdout. Its stderr is dropped with its stdout: either may hold the password.
    pub async fn run(&self) -> Result<Secret, PasswordCommandFailed> {
        use super::process::{ChildCommand, ChildError};
        let fail = |why: String| PasswordCommandFailed { key: self.key.to_string(), why };
        let out = ChildCommand::new("sh")
            .label("password command")
            .args(["-c", &self.command])
            .deadline(Duration::from_secs(60))
            .keep_all_stdout()
            .run(&tokio_util::sync::CancellationToken::new())
            .await
            .map_err(|e| match e {
                ChildError::Spawn { source, .. } => fail(format!("could not be started ({})", source.kind())),
                ChildError::Failed { status, .. } => fail(format!("failed ({status})")),
                ChildError::Deadline { .. } => fail("did not finish within 60s".into()),
                _ => fail("was stopped before it printed a password".into()),
            })?;
        match out.stdout.trim() {
            "" => Err(fail("printed nothing".into())),
            password => Ok(self.remember(Secret::from_string(password.to_string()))),
        }
    }

    fn remember(&self, password: Secret) -> Secret {
        let mut printed = self.printed.lock().expect("no panic while holding it");
        if !printed.contains(&password) {
            if printed.len() == REMEMBERED {
                printed.remove(0);
            }
            printed.push(password.clone());
        }
        password
    }

    /// The passwords it printed so far (the last few hundred).
    pub fn printed(&self) -> Vec<Secret> {
        self.printed.lock().expect("no panic while holding it").clone()
    }

    /// [`PasswordCommand::run`] for synchronous callers (client tools' environment).
    pub fn run_blocking(&self) -> Option<Secret> {
        let out = std::process::Command::new("sh")
            .args(["-c", &self.command])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let password = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !password.is_empty()).then(|| self.remember(Secret::from_string(password)))
    }
}

/// What a `.pgpass` line is matched against.
pub struct PgpassQuery<'a> {
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The password libpq would take from its password file, if any: `PGPASSFILE`
/// or `~/.pgpass`, ignored (with a warning, as libpq does) when group or
/// others may read it.
pub fn from_pgpass(query: &PgpassQuery<'_>) -> Option<Secret> {
    let file = match std::env::var_os("PGPASSFILE") {
        Some(f) => PathBuf::from(f),
        None => Path::new(&std::env::var_os("HOME")?).join(".pgpass"),
    };
    let meta = std::fs::metadata(&file).ok()?;
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "warning: password file {} has group or world access; permissions should be u=rw (0600) or less: \
             it is not read (as libpq does)",
            file.display()
        );
        return None;
    }
    lookup(&std::fs::read_to_string(&file).ok()?, query).map(Secret::from_string)
}

/// The first line of `text` matching `query` (libpq's rules: `*` matches
/// anything, `\` escapes `:` and `\`, a unix socket's host matches `localhost`).
fn lookup(text: &str, query: &PgpassQuery<'_>) -> Option<String> {
    let host = match query.host.starts_with('/') {
        true => "localhost",
        false => query.host,
    };
    let port = query.port.to_string();
    let wanted = [host, port.as_str(), query.dbname, query.user];
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let fields = split_fields(line);
        let matches = fields.len() >= 5 && wanted.iter().zip(&fields).all(|(w, f)| f == "*" || f == w);
        matches.then(|| fields[4].clone())
    })
}

/// `a:b\:c:d` → ["a", "b:c", "d"] (the password, too, ends at an unescaped `:`, as in libpq).
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_as_libpq_matches_them() {
        let text = "# comment\nother:5432:*:app:no\ndb\\:x:*:app:*:pa\\:ss\\\\w:rd\n*:5432:*:*:fallback\n";
        let q = |host, port, user| PgpassQuery { host, port, dbname: "app", user };
        assert_eq!(lookup(text, &q("db:x", 6000, "app")).as_deref(), Some("pa:ss\\w"));
        assert_eq!(lookup(text, &q("other", 5432, "app")).as_deref(), Some("no"));
        assert_eq!(lookup(text, &q("/tmp", 5432, "x")).as_deref(), Some("fallback"));
        assert_eq!(lookup(text, &q("other", 5433, "bob")), None);
    }

    #[tokio::test]
    async fn a_command_that_prints_nothing_or_fails_is_named_without_its_output() {
        let ok = PasswordCommand::new("echo '  tok3n  '".into(), "postgres.password_command");
        assert_eq!(ok.run().await.unwrap().expose(), "tok3n");
        assert_eq!(ok.run_blocking().unwrap().expose(), "tok3n");
        // Remembered once, for tools' output to be redacted of.
        assert_eq!(ok.printed(), [Secret::from_string("tok3n".into())]);
        let empty = PasswordCommand::new("true".into(), "postgres.password_command");
        assert!(empty.run().await.unwrap_err().to_string().contains("printed nothing"));
        let failed = PasswordCommand::new("echo s3cret; exit 3".into(), "--password-command");
        let text = failed.run().await.unwrap_err().to_string();
        assert!(text.starts_with("--password-command: the password command failed"), "{text}");
        assert!(!text.contains("s3cret") && !format!("{failed:?}").contains("echo"));
    }
}
