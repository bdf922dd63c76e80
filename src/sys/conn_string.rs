//! Connection strings as users write them (`postgres://...?k=v` or
//! `k=v ...`): the TLS parameters are taken out (tokio-postgres's parser
//! knows only `sslmode=disable|prefer|require`) for `sys::tls` to honour
//! with libpq's semantics, and the few rehearse cannot honour are refused,
//! never dropped: a connection must not quietly be weaker than asked.

use std::borrow::Cow;
use std::ops::Range;

use super::tls::TlsParams;

/// A TLS (or GSSAPI encryption) parameter rehearse cannot honour; which
/// one, never its value unless it is a mode (a value may be a key's password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsRefused {
    /// A mode rehearse cannot give: `sslnegotiation=direct`, `gssencmode=require`.
    #[error("{key}={value} asks for a connection rehearse cannot make")]
    Mode { key: String, value: String },
    /// A TLS setting rehearse does not support: `sslcrl`, `sslpassword`, ...
    #[error("{key} is a TLS setting rehearse does not support")]
    Setting { key: String },
}

impl TlsRefused {
    /// The refusal as the user reads it, `input` naming where the string came from.
    pub fn explain(&self, input: &str) -> String {
        format!(
            "{input}: {self}; rehearse supports sslmode, sslrootcert, sslcert and sslkey (docs/connections.md), \
             and refuses the rest rather than ignore them: remove it from the connection string"
        )
    }
}

/// What a parameter asks of the connection's encryption.
enum Asks {
    /// Not about encryption, or a value libpq does not know: kept for the
    /// parser (which names an unknown value as such).
    Nothing,
    /// One of the settings `sys::tls` honours: taken out into [`TlsParams`].
    Taken,
    /// Asks only what rehearse gives anyway: removed (the parser rejects
    /// `requiressl`, `gssencmode`, `sslnegotiation`).
    Plain,
    Refused(TlsRefused),
}

/// The parameters that choose how a connection is encrypted besides
/// `sslmode`, by libpq's list (PostgreSQL 17's `libpq-connect` page;
/// `sslnegotiation` is 17+): (name, values removed, values refused).
/// `channel_binding` is left to tokio-postgres's parser, which knows it.
const MODES: &[(&str, &[&str], &[&str])] = &[
    // Deprecated: 1 means sslmode=require (taken as such, below).
    ("requiressl", &["0"], &[]),
    // `direct` starts with a TLS handshake, which tokio-postgres 0.7 does not do here.
    ("sslnegotiation", &["postgres"], &["direct"]),
    // GSSAPI encryption: not TLS, and not something rehearse can make.
    ("gssencmode", &["disable", "prefer"], &["require"]),
];

/// What `key=value` asks; taken settings go into `params`.
fn asks(key: &str, value: &str, params: &mut TlsParams) -> Asks {
    if key == "requiressl" && value == "1" {
        params.sslmode.get_or_insert_with(|| "require".to_string());
        return Asks::Taken;
    }
    if params.set(key, value) {
        return Asks::Taken;
    }
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

/// `text` without its TLS parameters, and what they said; or the first
/// parameter rehearse cannot honour. A string this cannot read is returned
/// as it is, for the connection string parser to explain.
pub fn take_tls(text: &str) -> Result<(Cow<'_, str>, TlsParams), TlsRefused> {
    let mut params = TlsParams::default();
    let rest = remove_tls(text, Refuse::Yes, &mut params)?;
    Ok((rest, params))
}

/// `text` without any TLS parameter, refused or not: only to read what else
/// it holds (its password, to keep it out of messages).
pub fn stripped_of_tls(text: &str) -> Cow<'_, str> {
    remove_tls(text, Refuse::No, &mut TlsParams::default()).unwrap_or(Cow::Borrowed(text))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Refuse {
    Yes,
    No,
}

fn remove_tls<'a>(text: &'a str, refuse: Refuse, params: &mut TlsParams) -> Result<Cow<'a, str>, TlsRefused> {
    if let Some(prefix) = ["postgres://", "postgresql://"].into_iter().find(|p| text.starts_with(p)) {
        return url_without_tls(text, prefix.len(), refuse, params);
    }
    let mut removed = Vec::new();
    for (key, value, span) in key_value_params(text) {
        if removes(&key, &value, refuse, params)? {
            removed.push(span);
        }
    }
    Ok(match removed.is_empty() {
        true => Cow::Borrowed(text),
        false => Cow::Owned(remove(text, &removed)),
    })
}

/// Whether `key=value` is removed: a TLS setting (taken into `params`), or
/// one asking only what rehearse gives (or anything, when not refusing);
/// false for parameters that are not about encryption.
fn removes(key: &str, value: &str, refuse: Refuse, params: &mut TlsParams) -> Result<bool, TlsRefused> {
    match asks(key, value, params) {
        Asks::Nothing => Ok(false),
        Asks::Taken | Asks::Plain => Ok(true),
        Asks::Refused(_) if refuse == Refuse::No => Ok(true),
        Asks::Refused(r) => Err(r),
    }
}

/// [`remove_tls`] for a `postgres://` URL, whose query is read as
/// tokio-postgres reads it: the credentials end at the first `@`, the query
/// starts at the first `?` after them, its parameters are separated by `&`
/// and percent-encoded.
fn url_without_tls<'a>(
    text: &'a str,
    prefix: usize,
    refuse: Refuse,
    params: &mut TlsParams,
) -> Result<Cow<'a, str>, TlsRefused> {
    let after_credentials = text.find('@').map_or(prefix, |at| at + 1);
    let Some(mark) = text[after_credentials..].find('?').map(|q| after_credentials + q) else {
        return Ok(Cow::Borrowed(text));
    };
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut kept = Vec::new();
    for param in text[mark + 1..].split('&') {
        match param.split_once('=') {
            Some((key, value)) if removes(&decode(key), &decode(value), refuse, params)? => {}
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

    fn taken(text: &str) -> (String, TlsParams) {
        let (rest, params) = take_tls(text).expect(text);
        (rest.into_owned(), params)
    }

    #[test]
    fn tls_settings_are_taken_out_in_both_forms() {
        let (rest, params) =
            taken("postgres://u:p@db:5432/app?sslmode=verify%2Dfull&connect_timeout=5&sslrootcert=/ca.pem");
        assert_eq!(rest, "postgres://u:p@db:5432/app?connect_timeout=5");
        assert_eq!(params.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/ca.pem"));
        let (rest, params) = taken("host=db sslmode='require' sslcert=/c.pem sslkey = '/k e y.pem' dbname=app");
        assert_eq!(rest, "host=db    dbname=app");
        assert!(rest.parse::<tokio_postgres::Config>().is_ok());
        assert_eq!(params.sslkey.as_deref(), Some("/k e y.pem"));
        assert_eq!(taken("host=db requiressl=1").1.sslmode.as_deref(), Some("require"));
        // Neon's URLs: channel_binding is the parser's.
        assert_eq!(taken("postgres://db/app?channel_binding=require").0, "postgres://db/app?channel_binding=require");
    }

    #[test]
    fn what_rehearse_cannot_honour_is_refused_by_name_without_its_value() {
        for key in ["sslpassword", "sslcrl", "sslsni", "ssl_min_protocol_version"] {
            let url = format!("postgres://u:p@db/app?sslmode=prefer&{key}=s3cret");
            let refused = take_tls(&url).unwrap_err();
            assert_eq!(refused, TlsRefused::Setting { key: key.into() });
            assert!(!refused.explain("--url").contains("s3cret"));
        }
        assert!(matches!(take_tls("postgres://db/app?sslnegotiation=direct"), Err(TlsRefused::Mode { .. })));
        assert!(matches!(take_tls("host=db gssencmode=require"), Err(TlsRefused::Mode { .. })));
    }

    #[test]
    fn plain_settings_are_removed_and_the_rest_is_kept_for_the_parser() {
        let cases = [
            ("postgres://db?requiressl=0&gssencmode=disable", "postgres://db"),
            ("postgres://db/app?application_name=a&sslnegotiation=postgres", "postgres://db/app?application_name=a"),
            ("host=db password='a b\\' sslmode=require' sslmode=prefer", "host=db password='a b\\' sslmode=require' "),
        ];
        for (text, want) in cases {
            assert_eq!(taken(text).0, want, "{text}");
        }
        for untouched in ["postgres://u:p@db/app", "postgres://u:p@db/app?connect_timeout=5", "host=db dbname=app", ""]
        {
            assert!(matches!(take_tls(untouched), Ok((Cow::Borrowed(_), _))), "{untouched}");
        }
    }

    #[test]
    fn stripped_of_tls_removes_refused_ones_too() {
        let text = "postgres://u:p%40ss@db/app?sslmode=verify-full&sslcrl=/crl.pem&connect_timeout=5";
        assert_eq!(stripped_of_tls(text), "postgres://u:p%40ss@db/app?connect_timeout=5");
        assert_eq!(stripped_of_tls("host=db sslmode=require sslkey=k"), "host=db  ");
    }

    #[test]
    fn a_password_that_looks_like_a_parameter_is_not_one() {
        // The credentials end at the first `@`; a `?` in the password is not a query.
        assert_eq!(taken("postgres://u:pa?sslmode=require@db/app").1, TlsParams::default());
        assert_eq!(taken("user=u password=sslmode=require host=db").1, TlsParams::default());
    }
}
