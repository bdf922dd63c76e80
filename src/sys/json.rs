//! rehearse's own JSON files read back (`rehearse.report/v1`,
//! `rehearse.stats/v1`, `rehearse.queries/v1`): parsed, their `schema`
//! checked before anything else is read, then read as their type. Each
//! refusal is bad input of the reader's kind, in the reader's words.

use serde::de::DeserializeOwned;

use crate::error::{ErrorKind, Result};

/// Why a file was refused, for the reader to put in its own words.
pub enum Refusal<'a> {
    NotJson,
    /// Its `schema`, when it has one.
    OtherSchema(Option<&'a str>),
    /// The right schema, without what the reader needs.
    Incomplete,
}

/// `text` as a `T` of `schema`; `refuse` says why not, in an error of `kind`.
pub fn read_versioned<T: DeserializeOwned>(
    text: &str,
    schema: &str,
    kind: ErrorKind,
    refuse: impl Fn(Refusal) -> String,
) -> Result<T> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| kind.because(refuse(Refusal::NotJson), e))?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(s) if s == schema => {}
        other => return Err(kind.error(refuse(Refusal::OtherSchema(other)))),
    }
    T::deserialize(value).map_err(|e| kind.because(refuse(Refusal::Incomplete), e))
}
