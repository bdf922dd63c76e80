//! A check over rehearse's own source: no string literal carries a run of
//! spaces between words, or a line break with the source's indentation
//! after it. Both come from a message split across source lines without a
//! trailing `\` (or lines joined by hand), and show in the user's terminal
//! as "uses                  (this run ...". SQL is exempt (its layout is
//! for the reader of the query), and so are the few literals that align
//! columns on purpose, listed with their reason.

use std::path::{Path, PathBuf};

/// Literals whose runs of spaces are deliberate: (file, a piece of the literal).
const ALIGNED: &[(&str, &str)] = &[
    // `rehearse cleanup`: "removed " / "kept    " / "FAILED  " in one column.
    ("src/backend/leftovers.rs", "kept    {}"),
    ("src/backend/leftovers.rs", "FAILED  {}"),
    // `rehearse cache list`: key, size, server, age, dump in columns.
    ("src/cli/mod.rs", "{}  {:>9}  {server}"),
    // `rehearse doctor` and `calibrate`: a command, then a note set apart from it.
    ("src/cli/doctor.rs", "   ("),
    ("src/cli/calibrate.rs", "   (the other server"),
    // `--help` examples: shell comments aligned after the commands.
    ("src/cli/mod.rs", "  # "),
];

/// A string literal in a source file: its line and its value (escapes
/// `\n` and `\t` decoded, `\`-newline continuations removed as Rust does).
struct Literal {
    line: usize,
    value: String,
    /// The literal spans source lines without a `\` continuation.
    raw_newline: bool,
}

/// The ordinary string literals of `source` (raw strings, which hold SQL,
/// are skipped), outside comments and char literals.
fn literals(source: &str) -> Vec<Literal> {
    let b = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(len) = raw_string_len(rest, i.checked_sub(1).map(|p| b[p])) {
            i += len;
        } else if b[i] == b'\'' {
            i += char_literal_len(rest);
        } else if b[i] == b'"' {
            let (literal, len) = string_literal(rest, source[..i].matches('\n').count() + 1);
            out.push(literal);
            i += len;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// The length of a raw string (`r"..."`, `r#"..."#`, `br"..."`) starting here, if one does.
fn raw_string_len(rest: &str, before: Option<u8>) -> Option<usize> {
    if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return None;
    }
    let after_r = rest.strip_prefix("br").or_else(|| rest.strip_prefix('r'))?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)?;
    Some(rest.len() - body.len() + end + close.len())
}

/// The length of a char literal (`'a'`, `'\n'`, `'\u{FFFD}'`), or 1 for a lifetime's quote.
fn char_literal_len(rest: &str) -> usize {
    let mut chars = rest.char_indices().skip(1);
    match chars.next() {
        // The escaped character may be a quote itself: look past it.
        Some((_, '\\')) => rest.get(3..).and_then(|r| r.find('\'')).map_or(1, |e| e + 4),
        Some((_, _)) => match chars.next() {
            Some((at, '\'')) => at + 1,
            _ => 1,
        },
        None => 1,
    }
}

/// The literal starting at the `"` that opens `rest`, and its length in the source.
fn string_literal(rest: &str, line: usize) -> (Literal, usize) {
    let mut value = String::new();
    let mut raw_newline = false;
    let mut chars = rest.char_indices().skip(1).peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return (Literal { line, value, raw_newline }, at + 1),
            '\\' => match chars.next() {
                Some((_, '\n')) => {
                    while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                        chars.next();
                    }
                }
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => value.push(other),
                None => {}
            },
            '\n' => {
                raw_newline = true;
                value.push('\n');
            }
            other => value.push(other),
        }
    }
    (Literal { line, value, raw_newline }, rest.len())
}

/// SQL keeps its own layout: a literal with an upper-case SQL keyword is SQL.
fn is_sql(value: &str) -> bool {
    const KEYWORDS: [&str; 10] = ["SELECT", "FROM", "WHERE", "CREATE", "WITH", "JOIN", "AND", "NOT", "UNION", "BEGIN"];
    value.split(|c: char| !c.is_ascii_alphabetic()).any(|word| KEYWORDS.contains(&word))
}

/// What is wrong with a literal's spacing, if anything.
fn spacing_problem(literal: &Literal) -> Option<&'static str> {
    if is_sql(&literal.value) {
        return None;
    }
    if literal.raw_newline {
        return Some("spans source lines without a trailing `\\`, so it holds the line break and indentation");
    }
    // Indentation after an explicit `\n` is layout; a run between words is not.
    let run_between_words =
        literal.value.lines().any(|l| l.trim_start().trim_end().split(' ').skip(1).any(|piece| piece.is_empty()));
    run_between_words.then_some("has a run of spaces between words")
}

/// Every `.rs` file under `dir`, without the test-only `tests.rs` files.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_message_has_a_run_of_spaces_from_the_source_layout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut problems = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // Test modules hold fixtures (server logs, YAML), not messages.
        let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap_or(&text);
        let file = path.strip_prefix(root).unwrap().display().to_string();
        if file == "src/sys/literals.rs" {
            continue; // its examples are what it looks for
        }
        for literal in literals(code) {
            let aligned = ALIGNED.iter().any(|(f, piece)| *f == file && literal.value.contains(piece));
            if let Some(problem) = spacing_problem(&literal).filter(|_| !aligned) {
                problems.push(format!("{file}:{}: {problem}: {:?}", literal.line, literal.value));
            }
        }
    }
    assert!(problems.is_empty(), "{} literal(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_check_sees_a_message_split_without_a_continuation_and_a_joined_one() {
    let source = "let a = \"uses\n                 (this run)\";\nlet b = \"uses                  (this\";\n\
                  let c = \"one \\\n           line\"; // \"a  comment\"\nlet d = r#\"raw  \"#; let e = '\"';\n";
    let found: Vec<(usize, Option<&str>)> = literals(source).iter().map(|l| (l.line, spacing_problem(l))).collect();
    assert_eq!(found.len(), 3, "a, b and c; not the comment, the raw string or the char: {found:?}");
    assert!(found[0].1.is_some_and(|p| p.contains("without a trailing")), "{found:?}");
    assert!(found[1].1.is_some_and(|p| p.contains("run of spaces")), "{found:?}");
    assert_eq!(found[2], (4, None), "a `\\` continuation drops the indentation");
}
