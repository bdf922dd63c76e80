//! What most likely made each difference, in words a reader can act on,
//! per cause and kind.

use crate::pg::DriftKind;
use crate::report::DriftCause;

/// The likely story of a finding of `kind` (`index`, `index name`, ...)
/// with these definitions.
pub(super) fn likely(cause: DriftCause, kind: DriftKind, production: Option<&str>, history: Option<&str>) -> String {
    match cause {
        DriftCause::OnlyInProduction => only_in_production(kind),
        DriftCause::OnlyInHistory => only_in_history(kind),
        DriftCause::Different => different(kind, production.unwrap_or_default(), history.unwrap_or_default()),
    }
}

fn only_in_production(kind: DriftKind) -> String {
    use DriftKind::*;
    let text = match kind {
        Index => "an index added by hand in production (out of band)",
        Column => "a column added by hand in production (out of band)",
        Constraint => "a constraint added by hand in production (out of band)",
        Trigger => "a trigger added by hand in production (out of band)",
        Extension => "an extension installed by hand in production (CREATE EXTENSION out of band)",
        Table | View | MaterializedView | Function => {
            return format!(
                "a {} created by hand in production (out of band), or by a migration since deleted from the history",
                if kind == Function { "function or procedure" } else { kind.as_str() }
            )
        }
        Owner | Privileges => "set by hand in production (out of band)",
        _ => return format!("{} created by hand in production (out of band)", with_article(kind)),
    };
    text.to_string()
}

fn only_in_history(kind: DriftKind) -> String {
    use DriftKind::*;
    match kind {
        Index | Column | Constraint | Trigger => {
            format!("{} dropped by hand in production, or a migration stamped but never run there", with_article(kind))
        }
        Extension => {
            "a migration stamped but never run in production, or the extension dropped out of band".to_string()
        }
        _ => format!("a migration stamped but never run in production, or the {kind} dropped out of band"),
    }
}

fn different(kind: DriftKind, production: &str, history: &str) -> String {
    use DriftKind::*;
    const EDITED: &str = "an applied migration edited after it ran";
    match kind {
        Column => format!("a manual fix in production (ALTER TABLE ... ALTER COLUMN by hand), or {EDITED}"),
        Function => format!("{EDITED}, or the function replaced by hand (CREATE OR REPLACE)"),
        Enum => enum_labels(production, history),
        Index if production == format!("{history} INVALID") => {
            "a CREATE INDEX CONCURRENTLY that failed in production and left the index invalid".to_string()
        }
        Constraint if production.ends_with(" NOT VALID") && !history.ends_with(" NOT VALID") => {
            "a constraint added NOT VALID in production and never validated (ALTER TABLE ... VALIDATE CONSTRAINT)"
                .to_string()
        }
        IndexName => "the index renamed by hand in production (ALTER INDEX ... RENAME), or its name left \
                      to the server in one and given in the other"
            .to_string(),
        ConstraintName => "the constraint renamed by hand in production (ALTER TABLE ... RENAME CONSTRAINT), \
                           or its name left to the server in one and given in the other"
            .to_string(),
        Table => format!(
            "the table's persistence, partitioning, storage parameters or row security changed by hand \
             (SET LOGGED / UNLOGGED, ATTACH / DETACH PARTITION, SET (...), ENABLE ROW LEVEL SECURITY), or {EDITED}"
        ),
        Extension => "the extension updated by hand (ALTER EXTENSION ... UPDATE), or installed in production \
                      at another version or schema than the build got"
            .to_string(),
        Schema => "the schema's owner or grants changed by hand in production".to_string(),
        Owner => "the owner changed by hand (ALTER ... OWNER TO), or the history built as another role than \
                  production's migrations run as"
            .to_string(),
        Privileges => {
            "a GRANT or REVOKE run by hand in production, or grants managed outside the migrations".to_string()
        }
        _ => format!("the {kind} altered or replaced by hand in production, or {EDITED}"),
    }
}

/// `an enum`, `a sequence`.
fn with_article(kind: DriftKind) -> String {
    let vowel = kind.as_str().starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

/// Enum labels: more in production is an `ADD VALUE` run by hand; fewer, an
/// `ADD VALUE` migration stamped but never run.
fn enum_labels(production: &str, history: &str) -> String {
    // Labels are quote_literal'd and joined with ", ": counting the joints
    // miscounts only a label that itself holds "', '", and then only the wording.
    let count = |labels: &str| if labels.is_empty() { 0 } else { labels.matches("', '").count() + 1 };
    match count(production).cmp(&count(history)) {
        std::cmp::Ordering::Greater => {
            "a label added out of band (ALTER TYPE ... ADD VALUE by hand in production)".to_string()
        }
        std::cmp::Ordering::Less => {
            "a migration's ALTER TYPE ... ADD VALUE stamped but never run in production".to_string()
        }
        std::cmp::Ordering::Equal => "labels renamed or reordered by hand (ALTER TYPE ... RENAME VALUE), or an \
                                      applied migration edited after it ran"
            .to_string(),
    }
}
