//! Values of the copy's rows taken out of text that may quote them: the
//! shapes in which PostgreSQL (15 and 18 alike), psql, pg_restore and the
//! usual drivers put a row's values into a message, each value replaced by
//! `…` while the message keeps its shape (`Key (email)=(…) already exists`).
//!
//! The shapes, from PostgreSQL's own messages (the same text in 15 and 18):
//! - `Key (cols)=(values) already exists | is duplicated | is not present in
//!   table … | is still referenced from table … | conflicts with [existing]
//!   key (cols)=(values)` — unique, foreign-key and exclusion constraints and
//!   `CREATE UNIQUE INDEX` (`BuildIndexValueDescription`);
//! - `Failing row contains (values)` and `Partition key of the failing row
//!   contains (cols) = (values)` — check and not-null constraints, partitions;
//! - `invalid input syntax for type T: "value"`, `invalid input value for
//!   enum T: "value"`, `value "value" is out of range for type T`,
//!   `date/time field value out of range: "value"`, `Token "value" is invalid`;
//! - `COPY t, line N[, column c]: "row"` — the CONTEXT of a failed COPY (pg_restore);
//! - statement parameters: PostgreSQL's `parameters: $1 = '…'` log detail and
//!   SQLAlchemy's `[parameters: …]`.
//!
//! Identifiers (table, column, constraint names) and the SQL of the
//! migrations themselves are kept: they are the release's, not production's.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What stands for a value taken out.
pub const PLACEHOLDER: &str = "…";

/// `text` with every value in a known shape replaced by [`PLACEHOLDER`].
pub fn values(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for rule in RULES.iter() {
        if rule.start.is_match(&out) {
            out = Cow::Owned(rule.apply(&out));
        }
    }
    out
}

/// `sql` with its constants replaced by `$1`, `$2`, … as pg_stat_statements
/// writes them (libpg_query's normalization): for the app's statements taken
/// from a log, whose constants are the values production ran them with.
/// Text that does not parse keeps its structure with each quoted literal
/// replaced by `'…'`.
pub fn sql_constants(sql: &str) -> String {
    static QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"'(?:[^']|'')*'").expect("a valid pattern"));
    match pg_query::normalize(sql) {
        Ok(normalized) => normalized,
        Err(_) => QUOTED.replace_all(sql, "'…'").into_owned(),
    }
}

/// Where a value starts (the end of `start`'s match) and how it ends.
struct Rule {
    start: Regex,
    end: End,
}

enum End {
    /// At the first `)` followed by one of these, else the last `)` on the line.
    Paren(&'static [&'static str]),
    /// At the last `"` on the line.
    Quote,
    /// At the closing `]` at the end of the line, or the end of the line.
    Line,
}

/// What follows a key's values in PostgreSQL's messages.
const AFTER_KEY: &[&str] =
    &[" already exists", " is duplicated", " is not present", " is still referenced", " conflicts with"];

/// What follows a failing row's values.
const ROW_END: &[&str] = &[".\n", ". "];

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |start: &str, end| Rule { start: Regex::new(start).expect("a valid pattern"), end };
    vec![
        // Lazily to the first `)=(`: an expression index's columns hold parentheses.
        rule(r"(?i)\bkey \([^\n]*?\)=\(", End::Paren(AFTER_KEY)),
        // The row ends at `).` closing the DETAIL line (a proposed change to
        // PostgreSQL appends `Check constraint expression: (...).` after a space).
        rule(r"Failing row contains \(", End::Paren(ROW_END)),
        rule(r"failing row contains \([^)\n]*\) = \(", End::Paren(ROW_END)),
        rule(
            r#"(invalid input syntax for (type )?[^:\n"]+|invalid input value for enum [^:\n"]+|date/time field value out of range|COPY [^,\n]+, line \d+(, column [^:\n]+)?): ""#,
            End::Quote,
        ),
        rule(r#"\b(value|Token) ""#, End::Quote),
        // PostgreSQL's `parameters: $1 = '…'` and SQLAlchemy's `[parameters: …]`.
        rule(r"\bparameters: ", End::Line),
    ]
});

impl Rule {
    fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = 0;
        for m in self.start.find_iter(text) {
            if m.start() < rest {
                continue;
            }
            let line_end = text[m.end()..].find('\n').map_or(text.len(), |i| m.end() + i);
            let value_end = m.end() + self.value_end(&text[m.end()..], line_end - m.end());
            if self.is_quote() && text[m.start()..m.end()].starts_with("value") {
                // `value "x" is out of range`: only that message quotes a value after `value`.
                if !text[value_end..line_end].starts_with("\" is out of range") {
                    continue;
                }
            }
            out.push_str(&text[rest..m.end()]);
            out.push_str(PLACEHOLDER);
            rest = value_end;
        }
        out.push_str(&text[rest..]);
        out
    }

    fn is_quote(&self) -> bool {
        matches!(self.end, End::Quote)
    }

    /// Where the value ends in `rest` (the text after the start), whose
    /// first line is `line_len` long. A value PostgreSQL closes with `)` may
    /// span lines (a text value holding a newline is written as it is), so
    /// its end is looked for in the whole rest; a value with no end in sight
    /// takes the rest of its line: when in doubt, more is taken out, never less.
    fn value_end(&self, rest: &str, line_len: usize) -> usize {
        let line = &rest[..line_len];
        match self.end {
            End::Paren(after) => {
                // The end of the text ends a message too.
                let padded = format!("{rest}\n");
                let closed = after.iter().filter_map(|a| padded.find(&format!("){a}"))).min();
                closed.or_else(|| line.rfind(')')).unwrap_or(line_len)
            }
            End::Quote => line.rfind('"').unwrap_or(line_len),
            End::Line => line.strip_suffix(']').map_or(line_len, str::len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, want: &str) {
        assert_eq!(values(text), want, "from {text:?}");
    }

    #[test]
    fn keys_keep_their_columns_and_lose_their_values() {
        check(
            "ERROR: duplicate key value violates unique constraint \"users_email_key\"\nDETAIL: Key (email)=(alice@example.com) already exists.",
            "ERROR: duplicate key value violates unique constraint \"users_email_key\"\nDETAIL: Key (email)=(…) already exists.",
        );
        check(
            "DETAIL: Key (lower(email::text))=(bob (work)@example.com) is duplicated.",
            "DETAIL: Key (lower(email::text))=(…) is duplicated.",
        );
        check(
            "DETAIL:  Key (user_id)=(42) is not present in table \"users\".",
            "DETAIL:  Key (user_id)=(…) is not present in table \"users\".",
        );
        check(
            "Key (room, during)=(1, [2026-01-01,2026-01-02)) conflicts with existing key (room, during)=(1, [2026-01-01,2026-01-03)).",
            "Key (room, during)=(…) conflicts with existing key (room, during)=(…).",
        );
        check(
            "Key (a, b)=(1, x) is still referenced from table \"t\".",
            "Key (a, b)=(…) is still referenced from table \"t\".",
        );
    }

    #[test]
    fn failing_rows_lose_every_value() {
        check(
            "ERROR: new row for relation \"users\" violates check constraint \"age_positive\"\nDETAIL: Failing row contains (7, carol@example.com, -3).\nHINT: x",
            "ERROR: new row for relation \"users\" violates check constraint \"age_positive\"\nDETAIL: Failing row contains (…).\nHINT: x",
        );
        check(
            "DETAIL: Partition key of the failing row contains (created) = (2026-12-06).",
            "DETAIL: Partition key of the failing row contains (created) = (…).",
        );
    }

    #[test]
    fn a_value_across_lines_or_without_its_end_is_taken_out_whole() {
        check(
            "DETAIL: Failing row contains (7, first line\nsecond line, -3).\nHINT: x",
            "DETAIL: Failing row contains (…).\nHINT: x",
        );
        check("DETAIL: Key (note)=(one\ntwo) already exists.", "DETAIL: Key (note)=(…) already exists.");
        check(
            "DETAIL: Failing row contains (1, 15). Check constraint expression: (age >= 18).",
            "DETAIL: Failing row contains (…). Check constraint expression: (age >= 18).",
        );
        // A tail cut in the middle of a value: the rest of its line goes.
        check("DETAIL: Key (email)=(alice@exam", "DETAIL: Key (email)=(…");
        check("invalid input syntax for type integer: \"12a", "invalid input syntax for type integer: \"…");
    }

    #[test]
    fn quoted_values_lose_their_text() {
        check("invalid input syntax for type integer: \"12a\"", "invalid input syntax for type integer: \"…\"");
        check("invalid input value for enum mood: \"happy\"", "invalid input value for enum mood: \"…\"");
        check("value \"99999999999\" is out of range for type integer", "value \"…\" is out of range for type integer");
        check("Token \"secret\" is invalid.", "Token \"…\" is invalid.");
        check(
            "CONTEXT:  COPY users, line 3, column email: \"dave@example.com\"",
            "CONTEXT:  COPY users, line 3, column email: \"…\"",
        );
        check("CONTEXT:  COPY users, line 3: \"3\tdave@example.com\"", "CONTEXT:  COPY users, line 3: \"…\"");
    }

    #[test]
    fn parameters_lose_their_values() {
        check(
            "[SQL: INSERT INTO users (email) VALUES (%(email)s)]\n[parameters: {'email': 'erin@example.com'}]",
            "[SQL: INSERT INTO users (email) VALUES (%(email)s)]\n[parameters: …]",
        );
        check("DETAIL:  parameters: $1 = 'erin@example.com', $2 = '3'", "DETAIL:  parameters: …");
    }

    #[test]
    fn constants_of_statements_become_parameters() {
        assert_eq!(
            sql_constants("SELECT id FROM users WHERE email = 'frank@example.com' AND age > 3"),
            "SELECT id FROM users WHERE email = $1 AND age > $2"
        );
        assert_eq!(sql_constants("SELEC id WHERE e = 'it''s' AND"), "SELEC id WHERE e = '…' AND");
    }

    #[test]
    fn text_without_values_is_kept_as_it_is() {
        for text in [
            "column \"full_name\" does not exist",
            "relation \"users\" does not exist",
            "the value \"x\" of setting y",
            "ERROR: cannot drop column email of table users because other objects depend on it",
            "key (unbalanced",
        ] {
            assert!(matches!(values(text), Cow::Borrowed(_)) || values(text) == text, "{text}");
            check(text, text);
        }
    }
}
