//! Flyway's placeholders: `${name}` in versioned, repeatable and callback
//! scripts, replaced before the script is split into statements.
//!
//! As Flyway's `PlaceholderReplacer` does, a placeholder is `${`, a name,
//! and the next `}` on the same line, and it is replaced everywhere in the
//! file: inside comments and string literals too (a `${x}` in a comment
//! with no value for `x` fails the script in Flyway as here). A name with no
//! value is bad input, found when the folder is scanned, before anything
//! starts. Replacement keeps every line where it was unless a value itself
//! holds a line break, so statement line numbers stay those of the file.
//!
//! Values: the scenario's `migrations.placeholders`, then Flyway's built-ins
//! (a value in the scenario wins over a built-in of the same name, so
//! `flyway:user` can be set to production's migration user).

use std::collections::BTreeMap;

/// Flyway's built-in placeholders.
pub const BUILT_INS: [&str; 7] = [
    "flyway:defaultSchema",
    "flyway:user",
    "flyway:database",
    "flyway:timestamp",
    "flyway:filename",
    "flyway:workingDirectory",
    "flyway:table",
];

/// Flyway's default history table, what `${flyway:table}` is without `migrations.table`.
const FLYWAY_TABLE: &str = "flyway_schema_history";

/// Every `${name}` of `text`: its 1-based line, byte range and name.
fn occurrences(text: &str) -> Vec<(usize, std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (n, line) in text.split('\n').enumerate() {
        let mut from = 0;
        while let Some(start) = line[from..].find("${").map(|i| from + i) {
            let Some(len) = line[start + 2..].find('}') else { break };
            let end = start + 2 + len + 1;
            if len > 0 {
                out.push((n + 1, offset + start..offset + end, &line[start + 2..end - 1]));
            }
            from = end;
        }
        offset += line.len() + 1;
    }
    out
}

/// The first `${name}` of `text` with no value among `user` and the
/// built-ins: its line and name.
pub fn first_unknown(text: &str, user: &BTreeMap<String, String>) -> Option<(usize, String)> {
    occurrences(text)
        .into_iter()
        .find(|(_, _, name)| !user.contains_key(*name) && !BUILT_INS.contains(name))
        .map(|(line, _, name)| (line, name.to_string()))
}

/// What the error for an unknown placeholder lists as known.
pub fn known_list(user: &BTreeMap<String, String>) -> String {
    let own: Vec<String> = user.keys().map(|k| format!("${{{k}}}")).collect();
    let built_in: Vec<String> = BUILT_INS.iter().map(|k| format!("${{{k}}}")).collect();
    if own.is_empty() {
        format!("Flyway's built-ins {} (migrations.placeholders sets none)", built_in.join(", "))
    } else {
        format!("{} from migrations.placeholders, and Flyway's built-ins {}", own.join(", "), built_in.join(", "))
    }
}

/// `text` with every known placeholder replaced (unknown ones were refused
/// at scan time; any left stay as written).
pub fn replace(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (_, range, name) in occurrences(text) {
        if let Some(v) = value(name) {
            out.push_str(&text[done..range.start]);
            out.push_str(&v);
            done = range.end;
        }
    }
    out.push_str(&text[done..]);
    out
}

/// The values of Flyway's built-ins for one rehearsal, read once from the
/// session migrations run on (before the first one can change it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltIns {
    /// The schema of `migrations.table` when it is qualified, else the session's `current_schema()`.
    pub default_schema: String,
    /// The user rehearse connects as.
    pub user: String,
    pub database: String,
    /// When the rehearsal started, `yyyy-MM-dd HH:mm:ss` as Flyway formats it.
    pub timestamp: String,
    pub working_directory: String,
    /// The history table's name, without its schema.
    pub table: String,
}

impl BuiltIns {
    /// The value of `name` for the script `filename`, user values first.
    pub fn value(&self, name: &str, filename: &str, user: &BTreeMap<String, String>) -> Option<String> {
        if let Some(v) = user.get(name) {
            return Some(v.clone());
        }
        Some(match name {
            "flyway:defaultSchema" => self.default_schema.clone(),
            "flyway:user" => self.user.clone(),
            "flyway:database" => self.database.clone(),
            "flyway:timestamp" => self.timestamp.clone(),
            "flyway:filename" => filename.to_string(),
            "flyway:workingDirectory" => self.working_directory.clone(),
            "flyway:table" => self.table.clone(),
            _ => return None,
        })
    }
}

/// `migrations.table` split into (schema, table), unquoted: `public.x`,
/// `"My Schema"."T"`, or a bare table (no schema). The table defaults to Flyway's.
pub fn split_table(table: Option<&str>) -> (Option<String>, String) {
    let Some(table) = table else { return (None, FLYWAY_TABLE.to_string()) };
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = table.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    let name = parts.pop().unwrap_or_default();
    (parts.pop(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> BTreeMap<String, String> {
        BTreeMap::from([("owner".to_string(), "app".to_string())])
    }

    #[test]
    fn placeholders_are_found_per_line_and_replaced_in_place() {
        let text = "-- for ${owner}\nGRANT SELECT ON ${flyway:defaultSchema}.t TO ${owner}; -- ${x\n${}";
        assert_eq!(first_unknown(text, &user()), None, "`${{x` has no `}}` on its line; `${{}}` has no name");
        assert_eq!(first_unknown("SELECT 1;\n\nSELECT '${nope}';", &user()), Some((3, "nope".into())));
        let b = BuiltIns {
            default_schema: "sales".into(),
            user: "rehearse".into(),
            database: "db".into(),
            timestamp: "2024-01-01 00:00:00".into(),
            working_directory: "/w".into(),
            table: "flyway_schema_history".into(),
        };
        let out = replace(text, |n| b.value(n, "V1__x.sql", &user()));
        assert_eq!(out, "-- for app\nGRANT SELECT ON sales.t TO app; -- ${x\n${}");
        assert_eq!(replace("${flyway:filename}", |n| b.value(n, "V1__x.sql", &user())), "V1__x.sql");
        let over = BTreeMap::from([("flyway:user".to_string(), "migrator".to_string())]);
        assert_eq!(b.value("flyway:user", "f", &over).as_deref(), Some("migrator"));
        assert!(known_list(&user()).starts_with("${owner} from migrations.placeholders"));
    }

    proptest::proptest! {
        /// Any text: no panic, and a placeholder written back as itself changes nothing.
        #[test]
        fn replacing_never_panics_and_keeps_the_text(text in "(\\PC|\\$\\{|\\}|\n){0,80}") {
            let _ = first_unknown(&text, &BTreeMap::new());
            proptest::prop_assert_eq!(replace(&text, |n| Some(format!("${{{n}}}"))), text);
        }
    }

    #[test]
    fn history_tables_split_into_schema_and_name() {
        assert_eq!(split_table(None), (None, "flyway_schema_history".into()));
        assert_eq!(split_table(Some("flyway_schema_history")), (None, "flyway_schema_history".into()));
        assert_eq!(split_table(Some("sales.history")), (Some("sales".into()), "history".into()));
        assert_eq!(split_table(Some("\"My.Schema\".\"T\"")), (Some("My.Schema".into()), "T".into()));
    }
}
