//! Small text helpers shared by error messages and reports.

/// The last `n` non-empty lines of `text`, joined with newlines (a child's
/// stderr, a server log, a container log: the end is what explains a failure).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `text` on one line (whitespace runs folded), cut to `max` characters with an ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_skip_blank_ones() {
        assert_eq!(last_lines("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn one_line_folds_and_cuts() {
        assert_eq!(one_line("SELECT\n  1,\t2", 80), "SELECT 1, 2");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
