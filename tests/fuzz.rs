//! Property tests of the parsers that read user input: scenario files, dump
//! headers, migration file names, SQL splitting, role scanning and the
//! running app's queries (`compat.queries`). They must
//! never panic, whatever they are given. `make test` runs a short pass
//! (proptest's default case count); `make fuzz` a long one (PROPTEST_CASES).

use std::path::Path;

use proptest::prelude::*;
use rehearse::compat::Corpus;
use rehearse::migrations::sql::{parse_file_name, split};
use rehearse::pg::DumpFormat;
use rehearse::plan::scenario;
use rehearse::restore::roles::roles_in_script;

proptest! {
    #[test]
    fn scenario_parsing_never_panics(text in "\\PC{0,400}") {
        let _ = scenario::parse(&text, Path::new("fuzz.yaml"));
    }

    #[test]
    fn scenario_like_yaml_never_panics(
        key in "[a-z_]{1,12}",
        value in "[ -~]{0,40}",
        tool in prop::sample::select(vec!["sql", "alembic", "command", "bogus"]),
    ) {
        let text = format!("dump: d.dump\nmigrations:\n  tool: {tool}\n  {key}: {value}\nobserve:\n  sample_interval: {value}\n");
        let _ = scenario::parse(&text, Path::new("fuzz.yaml"));
    }

    #[test]
    fn dump_detection_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048), prefix in prop::sample::select(vec![&b""[..], b"PGDMP", b"\x1f\x8b", b"--", b"SET "])) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        let mut content = prefix.to_vec();
        content.extend(bytes);
        std::fs::write(&path, content).unwrap();
        let _ = DumpFormat::detect(&path);
    }

    #[test]
    fn file_names_never_panic(name in "[ -~]{0,40}") {
        let _ = parse_file_name(&name);
        let _ = parse_file_name(&format!("{name}.sql"));
    }

    #[test]
    fn numeric_versions_order_naturally(a in 0u64..1_000_000_000_000, b in 0u64..1_000_000_000_000, width in 1usize..6) {
        let va = parse_file_name(&format!("V{a}__x.sql")).unwrap().unwrap().0;
        let vb = parse_file_name(&format!("{b:0width$}_y.sql")).unwrap().unwrap().0;
        prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
    }

    #[test]
    fn sql_splitting_never_panics(text in "\\PC{0,300}") {
        let _ = split(&text);
    }

    #[test]
    fn query_corpora_never_panic(
        text in "\\PC{0,300}",
        shape in prop::sample::select(vec!["", "INSERT INTO t ", "WITH x AS (INSERT INTO t ", "{\"schema\": \"rehearse.queries/v1\", \"queries\": "]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queries");
        std::fs::write(&path, format!("{shape}{text}")).unwrap();
        let _ = Corpus::load(&path, &tokio_util::sync::CancellationToken::new());
    }

    #[test]
    fn role_scanning_never_panics(lines in prop::collection::vec("(ALTER TABLE [a-z.\"]{1,12} OWNER TO |GRANT [A-Z ]{1,10} TO |COPY x FROM stdin;|\\\\.|)[ -~]{0,30}", 0..20)) {
        let _ = roles_in_script(lines.join("\n").as_bytes());
    }
}
