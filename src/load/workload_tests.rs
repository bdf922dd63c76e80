use super::*;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SCRIPT: &str = "-- the app's traffic\n\
-- rate: 40/s\n\
\\set uid random(1, 1000)\n\
SELECT * FROM orders WHERE user_id = :uid AND note <> ':uid' ORDER BY created_at DESC LIMIT 20;\n\
\n\
-- rate: 30/min\n\
UPDATE users SET last_seen_at = now() WHERE id = $1;\n\
\\set kind 'signup'\n\
INSERT INTO events (kind, at) VALUES (:kind, now()::timestamptz);\n";

#[test]
fn scripts_carry_rates_variables_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let w = load(&write(&dir, "w.sql", SCRIPT)).unwrap();
    let got: Vec<(usize, Option<f64>)> = w.statements.iter().map(|s| (s.line, s.rate)).collect();
    assert_eq!(got, [(4, Some(40.0)), (7, Some(0.5)), (9, None)]);
    assert!(!w.has_rates, "the INSERT has no rate");
    let select = &w.statements[0];
    assert!(select.sql.starts_with("SELECT * FROM orders WHERE user_id = :uid") && !select.sql.ends_with(';'));
    assert_eq!(select.variables, [("uid".to_string(), Variable::Random(1, 1000))]);
    // `:uid` in a string literal and `::` casts are SQL's, not variables.
    let variables: Vec<&Segment> = select.segments.iter().filter(|s| !matches!(s, Segment::Text(_))).collect();
    assert_eq!(variables, [&Segment::Variable("uid".into())]);
    assert!(select.parsable().contains("user_id = 1 AND note <> ':uid'"), "{}", select.parsable());
    assert_eq!(w.statements[1].params(), [1]);
    assert_eq!(w.statements[1].variables, [], "a \\set applies to the next statement only");
    assert!(w.statements[2].parsable().contains("VALUES ('signup', now()::timestamptz)"));
    assert_eq!(w.statements[0].mean_ms, None);
}

#[test]
fn exported_files_carry_rates_and_mean_times() {
    let dir = tempfile::tempdir().unwrap();
    let json = r#"{"schema": "rehearse.queries/v1", "taken_at": "2026-12-01T00:00:00Z", "server_version": "15.8",
        "database": "app", "window_seconds": 100.0, "window_start": "2026-11-30T23:58:20Z", "queries": [
          {"query": "SELECT * FROM t WHERE id = $1", "calls": 500, "mean_ms": 0.2, "calls_per_second": 5.0},
          {"query": "SELECT a[1:2] FROM t", "calls": 100, "mean_ms": 1.5, "calls_per_second": 1.0}]}"#;
    let w = load(&write(&dir, "q.json", json)).unwrap();
    assert!(w.has_rates);
    let got: Vec<(usize, Option<f64>, Option<f64>)> =
        w.statements.iter().map(|s| (s.line, s.rate, s.mean_ms)).collect();
    assert_eq!(got, [(1, Some(5.0), Some(0.2)), (2, Some(1.0), Some(1.5))]);
    assert_eq!(w.statements[1].parsable(), "SELECT a[1:2] FROM t", "no pgbench variables in production's text");
    // A file of an earlier `rehearse queries` loads, without rates.
    let old = json.replace(r#", "calls_per_second": 5.0"#, "");
    assert!(!load(&write(&dir, "old.json", &old)).unwrap().has_rates);
}

#[test]
fn bad_workloads_name_the_file_the_line_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str, expected: &str| {
        let err = load(&write(&dir, name, text)).unwrap_err();
        assert_eq!((err.kind(), err.exit_code()), (ErrorKind::WorkloadInvalid, crate::error::exit::BAD_INPUT));
        let text = err.render();
        assert!(text.contains(expected) && text.contains(name) && text.contains("(load.queries)"), "{text}");
    };
    check(
        "set.sql",
        "SELECT 1;\n\\set uid random(5)\nSELECT :uid;\n",
        "line 2 (load.queries) has `\\set uid random(5)`",
    );
    check(
        "order.sql",
        "\\set uid random(9, 1)\nSELECT :uid;\n",
        "line 1 (load.queries) has `\\set uid random(9, 1)`: random(LO, HI) needs LO <= HI",
    );
    check("unset.sql", "SELECT 1;\n\n\\set a 1\nSELECT 2;\nSELECT :a + :b;\n", "line 5 (load.queries) uses :a");
    check("rate.sql", "-- rate: fast\nSELECT 1;\n", "line 1 (load.queries) has `-- rate: fast`");
    check("zero.sql", "-- rate: 0/s\nSELECT 1;\n", "a rate is above 0");
    check("unit.sql", "-- rate: 5/hour\nSELECT 1;\n", "N/s or N/min");
    let utility = load(&write(&dir, "utility.sql", "SELECT 1;\nSET TIME ZONE 'UTC';\n")).unwrap();
    assert_eq!(utility.statements.len(), 2, "kept, for fill::prepare to list as not replayed");
    check("trailing.sql", "SELECT 1;\n-- rate: 5/s\n", "line 2 (load.queries) ends with");
    check("meta.sql", "\\sleep 10ms\nSELECT 1;\n", "line 1 (load.queries) has `\\sleep`");
    check(
        "inside.sql",
        "SELECT 1,\n\\set a 1\n2;\n",
        "line 2 (load.queries) has a `-- rate:` or `\\set` line inside a statement",
    );
    check("notsql.sql", "SELEC 1;\n", "is not SQL PostgreSQL can parse");
    check("empty.sql", "-- nothing\n", "holds no statement");
    check("other.json", r#"{"schema": "rehearse.stats/v1"}"#, "is not rehearse.queries/v1");
    check("broken.json", "{ nope", "is not JSON");
    let missing = load(&dir.path().join("missing.sql")).unwrap_err();
    assert!(missing.render().contains("cannot read the workload") && missing.render().contains("load.queries"));
}

#[test]
fn rates_and_sets_parse_as_pgbench_writes_them() {
    assert_eq!(rate("40/s"), Ok(40.0));
    assert_eq!(rate("2.5 / s"), Ok(2.5));
    assert_eq!(rate("120/min"), Ok(2.0));
    assert!(rate("-1/s").is_err() && rate("inf/s").is_err() && rate("5").is_err());
    assert_eq!(set("n 42"), Ok(Directive::Set("n".into(), Variable::Constant("42".into()))));
    assert_eq!(set("s 'it''s'"), Ok(Directive::Set("s".into(), Variable::Constant("'it''s'".into()))));
    assert_eq!(set("r random( -3 , 3 )"), Ok(Directive::Set("r".into(), Variable::Random(-3, 3))));
    assert!(set("s 'a'b'").is_err() && set("s now()").is_err() && set("bad-name 1").is_err() && set("x").is_err());
}
