//! The workload replayed under load (`load.queries`): the JSON `rehearse
//! queries` exports from production (statements with `$n` parameters and
//! their calls per second), or a `.sql` script the user writes in a
//! pgbench-like format, told apart by content:
//!
//! ```text
//! -- rate: 40/s
//! \set uid random(1, 1000)
//! SELECT * FROM orders WHERE user_id = :uid ORDER BY created_at DESC LIMIT 20;
//! ```
//!
//! A `-- rate: N/s` (or `N/min`) line and `\set` lines apply to the next
//! statement; `:name` is replaced by its value; `$n` parameters are filled
//! from the copy (`fill.rs`). Bad input names the file, the line and the key.

use std::path::{Path, PathBuf};

use pg_query::protobuf::Token;

use crate::compat::{AppQueries, QUERIES_SCHEMA};
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::sql::Pieces;
use crate::sys::json::{read_versioned, Refusal};

/// The workload, loaded and checked.
#[derive(Debug, Clone)]
pub struct Workload {
    pub path: PathBuf,
    pub statements: Vec<WorkloadStatement>,
    /// Every statement has a rate.
    pub has_rates: bool,
}

/// One statement of the workload.
#[derive(Debug, Clone)]
pub struct WorkloadStatement {
    /// As written (`:name` and `$n` still in).
    pub sql: String,
    /// 1-based line in the file (JSON: index + 1).
    pub line: usize,
    /// Statements per second in production.
    pub rate: Option<f64>,
    /// Production's mean time, when exported.
    pub mean_ms: Option<f64>,
    /// `sql` cut at each `:name` and `$n`.
    pub(crate) segments: Vec<Segment>,
    /// The `\set` variables of this statement.
    pub(crate) variables: Vec<(String, Variable)>,
}

/// A piece of a statement's text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Text(String),
    /// `:name`, a `\set` variable.
    Variable(String),
    /// `$n`.
    Param(u32),
}

/// A `\set` variable's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Variable {
    /// `random(LO, HI)`: an integer from LO to HI, both included.
    Random(i64, i64),
    /// A number, or a string literal `'...'`, substituted as written.
    Constant(String),
}

impl WorkloadStatement {
    /// The `$n` numbers the statement uses, each once, in order.
    pub(crate) fn params(&self) -> Vec<u32> {
        let mut params: Vec<u32> =
            self.segments.iter().filter_map(|s| if let Segment::Param(n) = s { Some(*n) } else { None }).collect();
        params.sort_unstable();
        params.dedup();
        params
    }

    pub(crate) fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The text with each `:name` replaced by a value of its kind (LO for a
    /// random one) and the `$n` kept: what the parse tree is read from.
    pub(crate) fn parsable(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Param(n) => out.push_str(&format!("${n}")),
                Segment::Variable(name) => match self.variable(name) {
                    Some(Variable::Random(lo, _)) => out.push_str(&lo.to_string()),
                    Some(Variable::Constant(c)) => out.push_str(c),
                    None => out.push_str("NULL"),
                },
            }
        }
        out
    }
}

/// Reads the workload at `path`: a `rehearse queries` file (JSON, which
/// SQL cannot start with) or a `.sql` script. Anything wrong is
/// [`ErrorKind::WorkloadInvalid`] naming the file, the line and `load.queries`.
pub fn load(path: &Path) -> Result<Workload> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ErrorKind::WorkloadInvalid.because(
            format!(
                "cannot read the workload {} (load.queries): give a .sql script of the app's statements, or what \
                 `rehearse queries --url URL --out FILE` exports from production",
                path.display()
            ),
            e,
        )
    })?;
    let statements = match text.trim_start().starts_with('{') {
        true => exported(path, &text)?,
        false => script(path, &text)?,
    };
    if statements.is_empty() {
        return Err(invalid(path, None, "holds no statement: list the app's queries and writes, each ended by `;`"));
    }
    let has_rates = statements.iter().all(|s| s.rate.is_some());
    Ok(Workload { path: path.to_path_buf(), statements, has_rates })
}

/// An error naming the file, the line when there is one, and the key.
fn invalid(path: &Path, line: Option<usize>, problem: &str) -> Error {
    let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
    ErrorKind::WorkloadInvalid.error(format!("the workload {}{at} (load.queries) {problem}", path.display()))
}

/// The statements of a `rehearse queries` file, with their rates.
fn exported(path: &Path, text: &str) -> Result<Vec<WorkloadStatement>> {
    let shown = path.display();
    let file: AppQueries = read_versioned(text, QUERIES_SCHEMA, ErrorKind::WorkloadInvalid, |refusal| match refusal {
        Refusal::NotJson => {
            format!("the workload {shown} (load.queries) is not JSON: make it again with `rehearse queries`")
        }
        Refusal::OtherSchema(other) => format!(
            "the workload {shown} (load.queries) is not {QUERIES_SCHEMA} (its schema is {}): make it with \
             `rehearse queries`, or give a .sql script",
            other.map(|s| format!("`{s}`")).unwrap_or_else(|| "missing".into())
        ),
        Refusal::Incomplete => {
            format!(
                "the workload {shown} (load.queries) lacks what a replay needs: make it again with `rehearse queries`"
            )
        }
    })?;
    let mut statements = Vec::new();
    for (i, q) in file.queries.into_iter().enumerate() {
        let segments = segments(&q.query).map_err(|e| invalid(path, Some(i + 1), &e))?;
        let mut s = WorkloadStatement {
            sql: q.query,
            line: i + 1,
            rate: q.calls_per_second,
            mean_ms: Some(q.mean_ms),
            segments,
            variables: Vec::new(),
        };
        // pg_stat_statements' text has no `:name` of pgbench's: a `:x` it kept is SQL's.
        s.segments = s.segments.into_iter().map(unset_variable_as_text).collect();
        statements.push(s);
    }
    Ok(statements)
}

fn unset_variable_as_text(segment: Segment) -> Segment {
    match segment {
        Segment::Variable(name) => Segment::Text(format!(":{name}")),
        other => other,
    }
}

/// What the lines between two statements said of the next one.
#[derive(Default)]
struct Pending {
    /// (line, rate).
    rate: Option<(usize, f64)>,
    /// (line, name, value).
    variables: Vec<(usize, String, Variable)>,
}

/// The statements of a script. Directive lines (`-- rate:`, `\set`) are
/// blanked before the SQL splitter sees the text, so lines keep their numbers.
fn script(path: &Path, text: &str) -> Result<Vec<WorkloadStatement>> {
    let mut directives: Vec<(usize, Directive)> = Vec::new();
    let mut sql_text = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        match directive(line).map_err(|e| invalid(path, Some(i + 1), &e))? {
            Some(d) => {
                directives.push((i + 1, d));
                sql_text.push_str(if line.ends_with('\n') { "\n" } else { "" });
            }
            None => sql_text.push_str(line),
        }
    }
    let not_sql = |e: String| invalid(path, None, &format!("is not SQL PostgreSQL can parse: {e}"));
    // The splitter parses, and `:name` is no SQL: it splits a copy with
    // each `:name` replaced by a number of the same length.
    let masked = mask_variables(&sql_text).map_err(not_sql)?;
    let mut statements = Vec::new();
    let mut directives = directives.into_iter().peekable();
    for piece in Pieces::new(&masked) {
        let piece = piece.map_err(not_sql)?;
        let offset = piece.sql.as_ptr() as usize - masked.as_ptr() as usize;
        let sql = &sql_text[offset..offset + piece.sql.len()];
        let last_line = piece.line + piece.sql.matches('\n').count();
        let mut pending = Pending::default();
        while let Some((line, d)) = directives.next_if(|(line, _)| *line < piece.line) {
            pending.add(line, d);
        }
        if let Some((line, _)) = directives.peek().filter(|(line, _)| *line <= last_line) {
            return Err(invalid(
                path,
                Some(*line),
                "has a `-- rate:` or `\\set` line inside a statement: put it on its own line before the statement",
            ));
        }
        statements.push(statement(path, sql, piece.line, pending)?);
    }
    if let Some((line, _)) = directives.next() {
        return Err(invalid(path, Some(line), "ends with a `-- rate:` or `\\set` line that no statement follows"));
    }
    Ok(statements)
}

impl Pending {
    fn add(&mut self, line: usize, d: Directive) {
        match d {
            Directive::Rate(r) => self.rate = Some((line, r)),
            Directive::Set(name, value) => self.variables.push((line, name, value)),
        }
    }
}

/// One statement of a script, checked.
fn statement(path: &Path, sql: &str, line: usize, pending: Pending) -> Result<WorkloadStatement> {
    let segments = segments(sql).map_err(|e| invalid(path, Some(line), &e))?;
    let variables: Vec<(String, Variable)> = pending.variables.into_iter().map(|(_, n, v)| (n, v)).collect();
    let s = WorkloadStatement {
        sql: sql.to_string(),
        line,
        rate: pending.rate.map(|(_, r)| r),
        mean_ms: None,
        segments,
        variables,
    };
    for segment in &s.segments {
        if let Segment::Variable(name) = segment {
            if s.variable(name).is_none() {
                return Err(invalid(
                    path,
                    Some(line),
                    &format!("uses :{name}, which no `\\set {name} ...` line just before the statement sets"),
                ));
            }
        }
    }
    if let Err(e) = pg_query::parse(&s.parsable(), 0) {
        return Err(invalid(path, Some(line), &format!("is not SQL PostgreSQL can parse: {e}")));
    }
    // A utility statement (the `SET TIME ZONE` each of the app's
    // connections sends, say) is kept: `fill::prepare` lists it as not
    // replayed, as it does those of an exported file, and the same file
    // serves `compat.queries`, which ignores them.
    Ok(s)
}

/// A directive line of a script.
#[derive(Debug, PartialEq)]
enum Directive {
    Rate(f64),
    Set(String, Variable),
}

/// `line` as a directive; None for a line of SQL (or any other comment).
fn directive(line: &str) -> std::result::Result<Option<Directive>, String> {
    let trimmed = line.trim();
    if let Some(rest) = trimmed.strip_prefix("--").map(str::trim_start).and_then(|r| r.strip_prefix("rate:")) {
        return rate(rest.trim()).map(|r| Some(Directive::Rate(r)));
    }
    match trimmed.strip_prefix("\\set") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => set(rest.trim()).map(Some),
        Some(_) | None if trimmed.starts_with('\\') => Err(format!(
            "has `{}`: the only backslash command a workload takes is `\\set NAME random(LO, HI)` or \
             `\\set NAME CONSTANT`",
            trimmed.split_whitespace().next().unwrap_or(trimmed)
        )),
        _ => Ok(None),
    }
}

/// `N/s` or `N/min` as statements per second.
fn rate(text: &str) -> std::result::Result<f64, String> {
    let wrong = || format!("has `-- rate: {text}`: write a rate as N/s or N/min, e.g. `-- rate: 40/s`");
    let (n, unit) = text.split_once('/').ok_or_else(wrong)?;
    let n: f64 = n.trim().parse().map_err(|_| wrong())?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "min" | "minute" => 60.0,
        _ => return Err(wrong()),
    };
    match n.is_finite() && n > 0.0 {
        true => Ok(n / per),
        false => Err(format!("has `-- rate: {text}`: a rate is above 0")),
    }
}

/// The rest of a `\set` line: `NAME random(LO, HI)` or `NAME CONSTANT`.
fn set(rest: &str) -> std::result::Result<Directive, String> {
    let usage = "write `\\set NAME random(LO, HI)` (integers) or `\\set NAME CONSTANT` (a number or a 'string')";
    let (name, value) = rest.split_once(char::is_whitespace).ok_or_else(|| format!("has `\\set {rest}`: {usage}"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("has `\\set {rest}`: a variable's name is letters, digits and _; {usage}"));
    }
    let value = value.trim();
    let bad = || format!("has `\\set {rest}`: {usage}");
    let variable = if let Some(args) = value.strip_prefix("random(").and_then(|a| a.strip_suffix(')')) {
        let (lo, hi) = args.split_once(',').ok_or_else(bad)?;
        let (lo, hi): (i64, i64) = (lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?);
        if lo > hi {
            return Err(format!("has `\\set {rest}`: random(LO, HI) needs LO <= HI"));
        }
        Variable::Random(lo, hi)
    } else if value.parse::<f64>().is_ok_and(f64::is_finite) || is_string_literal(value) {
        Variable::Constant(value.to_string())
    } else {
        return Err(bad());
    };
    Ok(Directive::Set(name.to_string(), variable))
}

/// `'...'` with every inner quote doubled.
fn is_string_literal(value: &str) -> bool {
    value.len() >= 2
        && value.starts_with('\'')
        && value.ends_with('\'')
        && value[1..value.len() - 1].replace("''", "").find('\'').is_none()
}

/// `text` with each `:name` replaced by `0` and spaces (as many bytes).
fn mask_variables(text: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for segment in segments(text)? {
        match segment {
            Segment::Text(t) => out.push_str(&t),
            Segment::Param(n) => out.push_str(&format!("${n}")),
            Segment::Variable(name) => out.push_str(&format!("0{}", " ".repeat(name.len()))),
        }
    }
    match out.len() == text.len() {
        true => Ok(out),
        false => Err("a parameter is written with leading zeros ($01): write it as $1".into()),
    }
}

/// `sql` cut at each `:name` (pgbench's variable: a `:` token not part of
/// `::`, followed at once by a name) and each `$n`, as PostgreSQL's own
/// scanner tokenizes it, so string literals, quoted identifiers, comments
/// and dollar quotes are left alone.
pub(crate) fn segments(sql: &str) -> std::result::Result<Vec<Segment>, String> {
    let tokens = pg_query::scan_tokens(sql).map_err(|e| format!("is not SQL PostgreSQL can scan: {e}"))?;
    let mut out = Vec::new();
    let mut copied = 0;
    for t in &tokens {
        let (start, end) = (t.start as usize, t.end as usize);
        let cut = if t.token == Token::Param as i32 {
            sql[start + 1..end].parse().ok().map(|n| (Segment::Param(n), end))
        } else if t.token == Token::Ascii58 as i32 {
            let name_len =
                sql[end..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(sql.len() - end);
            (name_len > 0).then(|| (Segment::Variable(sql[end..end + name_len].to_string()), end + name_len))
        } else {
            None
        };
        if let Some((segment, resume)) = cut {
            if start > copied {
                out.push(Segment::Text(sql[copied..start].to_string()));
            }
            out.push(segment);
            copied = resume;
        }
    }
    if copied < sql.len() {
        out.push(Segment::Text(sql[copied..].to_string()));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
