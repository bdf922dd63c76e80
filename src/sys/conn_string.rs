//! Connection strings as users write them (`postgres://...?k=v` or
//! `k=v ...`): the TLS parameters rehearse cannot honour yet are refused,
//! never dropped. rehearse connects without TLS (`NoTls`), so a URL that asks
//! for an encrypted or verified connection must not quietly get a plain one.

use std::borrow::Cow;
use std::ops::Range;

/// A TLS (or GSSAPI encryption) parameter rehearse cannot honour; which
/// one, never its value unless it is a mode (a value may be a key's password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsRefused {
    /// A mode that asks for encryption: `sslmode=require`, `verify-ca`, `verify-full`, ...
    #[error("{key}={value} asks for an encrypted connection")]
    Mode { key: String, value: String },
    /// A setting only a TLS connection uses: `sslrootcert`, `sslcert`, `sslkey`, ...
    #[error("{key} is a setting of TLS connections")]
    Setting { key: String },
}

impl TlsRefused {
    /// The refusal as the user reads it, `input` naming where the string came from.
    pub fn explain(&self, input: &str) -> String {
        format!(
            "{input}: {self}, and rehearse does not support TLS yet: it would connect without TLS, so it refuses \
             rather than ignore it. Until TLS is supported, connect with sslmode=prefer or sslmode=disable (and no \
             other ssl* setting) on a network you trust, or through a local tunnel (e.g. ssh -N -L \
             5433:DBHOST:5432 BASTION, then a URL to 127.0.0.1:5433)"
        )
    }
}

/// What a parameter asks of the connection's encryption.
enum Asks {
    /// Nothing rehearse cannot give, or a value libpq does not know: kept
    /// for the parser (which names an unknown value as such).
    Nothing,
    /// A plain connection is fine: removed, since the parser rejects some of
    /// these (`allow`, `requiressl=0`, `gssencmode`) and rehearse connects without TLS anyway.
    Plain,
    Refused(TlsRefused),
}

/// The parameters that choose how a connection is encrypted, by libpq's
/// list (PostgreSQL 17's `libpq-connect` page; `sslnegotiation` is 17+):
/// (name, values that settle for a plain connection, values that ask for more).
const MODES: &[(&str, &[&str], &[&str])] = &[
    // `allow` and `prefer` try a plain connection when TLS is not offered.
    ("sslmode", &["disable", "allow", "prefer"], &["require", "verify-ca", "verify-full"]),
    // Deprecated: 1 means sslmode=require.
    ("requiressl", &["0"], &["1"]),
    // `direct` starts with a TLS handshake.
    ("sslnegotiation", &["postgres"], &["direct"]),
    // SCRAM channel binding binds to the TLS channel: `require` cannot be met without one.
    ("channel_binding", &["disable", "prefer"], &["require"]),
    // GSSAPI encryption: not TLS, but an encrypted connection rehearse cannot make either.
    ("gssencmode", &["disable", "prefer"], &["require"]),
];

/// What `key=value` asks; any other `ssl*` parameter only matters to a TLS
/// connection (`sslrootcert`, `sslcert`, `sslkey`, `sslpassword`, ...).
fn asks(key: &str, value: &str) -> Asks {
    match MODES.iter().find(|(name, ..)| *name == key) {
        Some((_, plain, _)) if plain.contains(&value) => Asks::Plain,
        Some((_, _, more)) if more.contains(&value) => {
            Asks::Refused(TlsRefused::Mode { key: key.to_string(), value: value.to_string() })
        }
        Some(_) => Asks::Nothing,
        None if key.starts_with("ssl") => Asks::Refused(TlsRefused::Setting { key: key.to_string() }),
        None => Asks::Nothing,
    }
}

/// Refuses a `PGSSLMODE` (libpq's environment default for `sslmode`) that
/// asks for encryption, whatever the string says: refusing more than libpq
/// would is safe, connecting in the clear when TLS was asked for is not.
pub fn check_env_sslmode(value: Option<&str>) -> Result<(), TlsRefused> {
    match value.map(|v| asks("sslmode", v)) {
        Some(Asks::Refused(_)) => {
            Err(TlsRefused::Mode { key: "PGSSLMODE".into(), value: value.unwrap_or_default().to_string() })
        }
        _ => Ok(()),
    }
}

/// `text` without the parameters that settle for a plain connection, or the
/// first parameter that asks for more. A string this cannot read is returned
/// as it is, for the connection string parser to explain.
pub fn without_tls(text: &str) -> Result<Cow<'_, str>, TlsRefused> {
    remove_tls(text, Refuse::Yes)
}

/// `text` without any TLS parameter, refused or not: only to read what else
/// it holds (its password, to keep it out of messages).
pub fn stripped_of_tls(text: &str) -> Cow<'_, str> {
    remove_tls(text, Refuse::No).unwrap_or(Cow::Borrowed(text))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Refuse {
    Yes,
    No,
}

fn remove_tls(text: &str, refuse: Refuse) -> Result<Cow<'_, str>, TlsRefused> {
    if let Some(prefix) = ["postgres://", "postgresql://"].into_iter().find(|p| text.starts_with(p)) {
        return url_without_tls(text, prefix.len(), refuse);
    }
    let mut removed = Vec::new();
    for (key, value, span) in key_value_params(text) {
        if removes(&key, &value, refuse)? {
            removed.push(span);
        }
    }
    Ok(match removed.is_empty() {
        true => Cow::Borrowed(text),
        false => Cow::Owned(remove(text, &removed)),
    })
}

/// Whether `key=value` is removed: it asks only what a plain connection
/// gives (or anything, when not refusing); false for parameters that are
/// not about encryption.
fn removes(key: &str, value: &str, refuse: Refuse) -> Result<bool, TlsRefused> {
    match asks(key, value) {
        Asks::Nothing => Ok(false),
        Asks::Plain => Ok(true),
        Asks::Refused(_) if refuse == Refuse::No => Ok(true),
        Asks::Refused(r) => Err(r),
    }
}

/// [`remove_tls`] for a `postgres://` URL, whose query is read as
/// tokio-postgres reads it: the credentials end at the first `@`, the query
/// starts at the first `?` after them, its parameters are separated by `&`
/// and percent-encoded.
fn url_without_tls(text: &str, prefix: usize, refuse: Refuse) -> Result<Cow<'_, str>, TlsRefused> {
    let after_credentials = text.find('@').map_or(prefix, |at| at + 1);
    let Some(mark) = text[after_credentials..].find('?').map(|q| after_credentials + q) else {
        return Ok(Cow::Borrowed(text));
    };
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut kept = Vec::new();
    for param in text[mark + 1..].split('&') {
        match param.split_once('=') {
            Some((key, value)) if removes(&decode(key), &decode(value), refuse)? => {}
            _ => kept.push(param),
        }
    }
    let base = &text[..mark];
    Ok(match kept.len() == text[mark + 1..].split('&').count() {
        true => Cow::Borrowed(text),
        false if kept.is_empty() => Cow::Owned(base.to_string()),
        false => Cow::Owned(format!("{base}?{}", kept.join("&"))),
    })
}

/// The `key=value` pairs of a libpq keyword/value string, each with its
/// span; quoting and backslash escapes as tokio-postgres (and libpq) read
/// them. Stops at the first thing that is not a pair: the parser says what.
fn key_value_params(text: &str) -> Vec<(String, String, Range<usize>)> {
    let mut params = Vec::new();
    let mut rest = KeyValueReader { text, at: 0 };
    while let Some(pair) = rest.pair() {
        params.push(pair);
    }
    params
}

struct KeyValueReader<'a> {
    text: &'a str,
    at: usize,
}

impl KeyValueReader<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &str {
        let start = self.at;
        while let Some(c) = self.peek().filter(|c| keep(*c)) {
            self.at += c.len_utf8();
        }
        &self.text[start..self.at]
    }

    fn pair(&mut self) -> Option<(String, String, Range<usize>)> {
        self.take_while(char::is_whitespace);
        let start = self.at;
        let key = self.take_while(|c| !c.is_whitespace() && c != '=').to_string();
        self.take_while(char::is_whitespace);
        if key.is_empty() || self.peek() != Some('=') {
            return None;
        }
        self.at += 1;
        self.take_while(char::is_whitespace);
        let value = self.value()?;
        Some((key, value, start..self.at))
    }

    /// A value, `'quoted'` or up to the next space, with `\` escaping the next character.
    fn value(&mut self) -> Option<String> {
        let quoted = self.peek() == Some('\'');
        if quoted {
            self.at += 1;
        }
        let mut value = String::new();
        let mut escaped = false;
        while let Some(c) = self.peek() {
            if !escaped && ((quoted && c == '\'') || (!quoted && c.is_whitespace())) {
                break;
            }
            self.at += c.len_utf8();
            match (escaped, c) {
                (false, '\\') => escaped = true,
                _ => {
                    value.push(c);
                    escaped = false;
                }
            }
        }
        if quoted {
            (self.peek() == Some('\'')).then(|| self.at += 1)?;
        }
        (quoted || !value.is_empty()).then_some(value)
    }
}

/// `text` without the `spans` (in order, not overlapping).
fn remove(text: &str, spans: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for span in spans {
        out.push_str(&text[from..span.start]);
        from = span.end;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> TlsRefused {
        without_tls(text).expect_err(text)
    }

    #[test]
    fn modes_that_ask_for_encryption_are_refused_in_both_forms() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let want = TlsRefused::Mode { key: "sslmode".into(), value: mode.into() };
            assert_eq!(refused(&format!("postgres://u:p@db:5432/app?sslmode={mode}")), want);
            assert_eq!(refused(&format!("host=db sslmode='{mode}' dbname=app")), want);
        }
        assert_eq!(
            refused("postgresql://db/app?connect_timeout=5&sslmode=verify%2Dfull"),
            TlsRefused::Mode { key: "sslmode".into(), value: "verify-full".into() }
        );
        assert!(matches!(refused("host=db requiressl=1"), TlsRefused::Mode { .. }));
        assert!(matches!(refused("postgres://db/app?sslnegotiation=direct"), TlsRefused::Mode { .. }));
        assert!(matches!(refused("postgres://db/app?gssencmode=require"), TlsRefused::Mode { .. }));
        // Neon's URLs.
        assert!(matches!(refused("postgres://db/app?channel_binding=require"), TlsRefused::Mode { .. }));
    }

    #[test]
    fn tls_settings_are_refused_by_name_without_their_value() {
        for key in ["sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl", "sslsni", "ssl_min_protocol_version"] {
            let url = format!("postgres://u:p@db/app?sslmode=prefer&{key}=s3cret");
            assert_eq!(refused(&url), TlsRefused::Setting { key: key.into() });
            assert!(!TlsRefused::Setting { key: key.into() }.explain("--url").contains("s3cret"));
            assert_eq!(refused(&format!("sslmode=disable {key} = 's3cret'")), TlsRefused::Setting { key: key.into() });
        }
    }

    #[test]
    fn plain_modes_are_removed_and_the_rest_is_kept_for_the_parser() {
        let cases = [
            ("postgres://u:p@db:5432/app?sslmode=prefer", "postgres://u:p@db:5432/app"),
            ("postgres://u:p@db/app?sslmode=allow&connect_timeout=5", "postgres://u:p@db/app?connect_timeout=5"),
            ("postgres://db/app?connect_timeout=5&sslmode=disable", "postgres://db/app?connect_timeout=5"),
            (
                "postgres://db/app?application_name=a&sslmode=disable&connect_timeout=5",
                "postgres://db/app?application_name=a&connect_timeout=5",
            ),
            ("postgres://db?requiressl=0&gssencmode=disable", "postgres://db"),
            ("postgres://db/app?channel_binding=prefer", "postgres://db/app"),
            (
                "postgres://db/app?application_name=a&sslmode=disable&gssencmode=prefer",
                "postgres://db/app?application_name=a",
            ),
            ("host=db sslmode = 'allow' dbname=app", "host=db  dbname=app"),
            ("host=db password='a b\\' sslmode=require' sslmode=prefer", "host=db password='a b\\' sslmode=require' "),
        ];
        for (text, want) in cases {
            let got = without_tls(text).unwrap();
            assert_eq!(got, want, "{text}");
            assert!(got.parse::<tokio_postgres::Config>().is_ok(), "{got} parses");
        }
        for untouched in ["postgres://u:p@db/app", "postgres://u:p@db/app?connect_timeout=5", "host=db dbname=app", ""]
        {
            assert!(matches!(without_tls(untouched), Ok(Cow::Borrowed(_))), "{untouched}");
        }
    }

    #[test]
    fn pgsslmode_asking_for_encryption_is_refused() {
        assert!(check_env_sslmode(None).is_ok());
        assert!(check_env_sslmode(Some("prefer")).is_ok());
        let refused = check_env_sslmode(Some("verify-full")).unwrap_err();
        assert_eq!(refused.to_string(), "PGSSLMODE=verify-full asks for an encrypted connection");
    }

    #[test]
    fn stripped_of_tls_removes_refused_ones_too() {
        let text = "postgres://u:p%40ss@db/app?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5";
        assert_eq!(stripped_of_tls(text), "postgres://u:p%40ss@db/app?connect_timeout=5");
        assert_eq!(stripped_of_tls("host=db sslmode=require sslkey=k"), "host=db  ");
    }

    #[test]
    fn a_password_that_looks_like_a_parameter_is_not_one() {
        // The credentials end at the first `@`; a `?` in the password is not a query.
        assert!(without_tls("postgres://u:pa?sslmode=require@db/app").is_ok());
        assert!(without_tls("user=u password=sslmode=require host=db").is_ok());
    }

    #[test]
    fn what_cannot_be_read_is_left_to_the_parser() {
        let unknown_values = ["host=db sslmode=REQUIRE", "postgres://db/app?sslmode=", "host=db gssencmode=maybe"];
        for text in ["host=db sslmode", "host=db sslmode='require", "postgres://db/app?sslmode"]
            .into_iter()
            .chain(unknown_values)
        {
            assert!(without_tls(text).is_ok(), "{text}");
        }
    }
}
