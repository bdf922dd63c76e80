//! A login setting's value as `ALTER ROLE/DATABASE ... SET` takes it back.
//!
//! pg_db_role_setting stores `name=value` as the server flattened the SET's
//! arguments; a GUC_LIST_QUOTE setting's list elements are double-quoted
//! there when they need it (`search_path="$user", public`). Given back as
//! one literal, `SET search_path = '"$user", public'` would make that whole
//! string one schema name. pg_dumpall splits such a value into its elements
//! and gives each as a literal (`makeAlterConfigCommand`, `SplitGUCList`
//! and `variable_is_guc_list_quote` in src/bin/pg_dump/dumputils.c,
//! PostgreSQL 15 and 18); so does this.

use super::quote_literal;

/// The settings PostgreSQL marks GUC_LIST_QUOTE (dumputils.c's
/// `variable_is_guc_list_quote`, the same list in 15 and 18).
const LIST_QUOTE: &[&str] = &[
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// The right-hand side of `SET name TO ...` for a value read from
/// pg_db_role_setting (or `SHOW`): one literal, or for a list setting one
/// literal per element.
pub fn set_value(name: &str, value: &str) -> String {
    if !LIST_QUOTE.iter().any(|l| l.eq_ignore_ascii_case(name)) {
        return quote_literal(value);
    }
    match split_list(value) {
        Some(items) if !items.is_empty() => items.iter().map(|i| quote_literal(i)).collect::<Vec<_>>().join(", "),
        // An empty list, or one the server would not have stored: as it is.
        _ => quote_literal(value),
    }
}

/// A GUC list's elements (dumputils.c's `SplitGUCList` with ','): each
/// bare up to a comma or whitespace, or double-quoted with `""` for a
/// quote; whitespace around elements dropped. None on a syntax error.
fn split_list(value: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    let mut rest = value.trim_start();
    if rest.is_empty() {
        return Some(items);
    }
    loop {
        let item;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices().peekable();
            let end = loop {
                let (i, c) = chars.next()?;
                match (c, chars.peek()) {
                    ('"', Some((_, '"'))) => {
                        text.push('"');
                        chars.next();
                    }
                    ('"', _) => break i + 1,
                    (c, _) => text.push(c),
                }
            };
            item = text;
            rest = &quoted[end..];
        } else {
            let end = rest.find(|c: char| c == ',' || c.is_whitespace()).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            item = rest[..end].to_string();
            rest = &rest[end..];
        }
        items.push(item);
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(next) => rest = next.trim_start(),
            None if rest.is_empty() => return Some(items),
            None => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_setting_is_given_back_one_literal_per_element() {
        assert_eq!(set_value("search_path", "app, public"), "'app', 'public'");
        assert_eq!(set_value("search_path", "\"$user\", public"), "'$user', 'public'");
        assert_eq!(set_value("SEARCH_PATH", "\"a \"\"b\"\"\",c"), "'a \"b\"', 'c'");
        assert_eq!(set_value("temp_tablespaces", "fast"), "'fast'");
        assert_eq!(set_value("search_path", "\"\""), "''");
    }

    #[test]
    fn other_settings_and_broken_lists_are_one_literal() {
        assert_eq!(set_value("statement_timeout", "2s"), "'2s'");
        assert_eq!(set_value("application_name", "a, b"), "'a, b'");
        assert_eq!(set_value("search_path", "\"open"), "'\"open'");
        assert_eq!(set_value("search_path", "a b"), "'a b'");
        assert_eq!(set_value("search_path", ""), "''");
    }
}
