//! Splitting a file into statements with pg_query (Postgres's own
//! grammar), so semicolons in strings, dollar quotes and comments are
//! handled as the server does; and which statements cannot run in a
//! transaction block.

use pg_query::NodeEnum;

/// One statement of a file, as Postgres splits it.
#[derive(Debug)]
pub struct Statement<'a> {
    pub sql: &'a str,
    /// 1-based line in the file where the statement starts.
    pub line: usize,
    /// CREATE INDEX CONCURRENTLY and friends cannot run inside a transaction
    /// block; explicit BEGIN/COMMIT means the file manages its own.
    pub needs_own_transaction: bool,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT...: the file manages its transactions.
    pub controls_transaction: bool,
}

/// Splits a file into statements with pg_query (Postgres's own grammar), so
/// semicolons in strings, dollar quotes and comments are handled as the server does.
pub fn split(text: &str) -> Result<Vec<Statement<'_>>, String> {
    Pieces::new(text)
        .map(|piece| {
            let Piece { sql, line } = piece?;
            let controls_transaction = matches!(first_node(sql), Some(NodeEnum::TransactionStmt(_)));
            Ok(Statement { sql, line, needs_own_transaction: needs_own_transaction(sql), controls_transaction })
        })
        .collect()
}

/// One statement of a text: leading comments and trailing blanks trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    pub sql: &'a str,
    /// 1-based line in the text where the statement starts.
    pub line: usize,
}

/// How much text the parser splits at once (about 5,000 statements of an app).
const CHUNK: usize = 512 * 1024;

/// The statements of a text in order, as PostgreSQL's grammar splits it,
/// a chunk at a time. The parser's split of a whole file of tens of
/// megabytes would be one call that cannot be interrupted and holds every
/// parse tree at once. So a chunk of the text, from a statement's start to
/// just after a `;`, is split; when the parser takes it, every statement in
/// it but the last is a statement of the text (each ended by a `;` token,
/// and the text's tokens up to the cut are the chunk's, since it starts
/// where a statement does), and the last is split again with the next chunk,
/// since that `;` may have been in a comment (`SELECT 1 -- one;`). A chunk
/// the parser refuses (cut inside a string, a dollar quote, a `BEGIN ATOMIC`
/// body) or that holds one statement doubles, until it reaches the end of
/// the text, where an error is the text's own. Each step is linear in its
/// chunk, and the chunks grow geometrically: the whole is linear.
pub struct Pieces<'a> {
    text: &'a str,
    /// Where the next chunk starts (a statement boundary).
    start: usize,
    /// The statements of the current chunk, in order.
    ready: std::collections::VecDeque<&'a str>,
    /// Lines counted up to this offset of `text`, and the line it is on.
    counted: (usize, usize),
    /// Bytes a chunk starts with.
    chunk: usize,
    failed: bool,
}

impl<'a> Pieces<'a> {
    pub fn new(text: &'a str) -> Pieces<'a> {
        Pieces::with_chunk(text, CHUNK)
    }

    /// With chunks of `chunk` bytes to start with (tests cut small ones).
    fn with_chunk(text: &'a str, chunk: usize) -> Pieces<'a> {
        Pieces { text, start: 0, ready: Default::default(), counted: (0, 1), chunk: chunk.max(1), failed: false }
    }

    /// The statements of the next chunk.
    fn next_chunk(&mut self) -> Result<Vec<&'a str>, String> {
        let mut size = self.chunk;
        loop {
            let end = self.cut(size);
            let split = pg_query::split_with_parser(&self.text[self.start..end]);
            match split {
                Ok(pieces) if end == self.text.len() => {
                    self.start = end;
                    return Ok(pieces);
                }
                Ok(mut pieces) if pieces.len() > 1 => {
                    let last = pieces.pop().expect("more than one");
                    self.start = last.as_ptr() as usize - self.text.as_ptr() as usize;
                    return Ok(pieces);
                }
                Err(e) if end == self.text.len() => return Err(e.to_string()),
                _ => size = size.saturating_mul(2),
            }
        }
    }

    /// Just after the last `;` of the `size` bytes from `start`; the end of
    /// the text when that is nearer, or when they hold no `;`.
    fn cut(&self, size: usize) -> usize {
        let window = self.start.saturating_add(size);
        if window >= self.text.len() {
            return self.text.len();
        }
        match self.text.as_bytes()[self.start..window].iter().rposition(|b| *b == b';') {
            Some(semicolon) => self.start + semicolon + 1,
            None => self.cut(size.saturating_mul(2)),
        }
    }

    /// `piece` (a statement of the text) as a [`Piece`], its line counted on from the last one.
    fn piece(&mut self, piece: &'a str) -> Option<Piece<'a>> {
        let offset = piece.as_ptr() as usize - self.text.as_ptr() as usize;
        let skip = leading_comments_len(piece);
        let sql = piece[skip..].trim_end();
        if sql.is_empty() {
            return None;
        }
        let (counted_to, line) = self.counted;
        let line = line + self.text[counted_to..offset + skip].matches('\n').count();
        self.counted = (offset + skip, line);
        Some(Piece { sql, line })
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Result<Piece<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(raw) = self.ready.pop_front() {
                match self.piece(raw) {
                    Some(piece) => return Some(Ok(piece)),
                    None => continue,
                }
            }
            if self.failed || self.start >= self.text.len() {
                return None;
            }
            match self.next_chunk() {
                Ok(pieces) => self.ready.extend(pieces),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

fn leading_comments_len(s: &str) -> usize {
    let mut i = 0;
    loop {
        let rest = &s[i..];
        let trimmed = rest.trim_start();
        i += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            i += trimmed.find('\n').map(|n| n + 1).unwrap_or(trimmed.len());
        } else if trimmed.starts_with("/*") {
            i += trimmed.find("*/").map(|n| n + 2).unwrap_or(trimmed.len());
        } else {
            return i;
        }
    }
}

fn first_node(sql: &str) -> Option<NodeEnum> {
    pg_query::parse(sql, 0).ok()?.protobuf.stmts.into_iter().next()?.stmt?.node
}

fn needs_own_transaction(sql: &str) -> bool {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return false;
    };
    parsed.protobuf.stmts.iter().filter_map(|raw| raw.stmt.as_ref().and_then(|s| s.node.as_ref())).any(|node| {
        match node {
            NodeEnum::IndexStmt(s) => s.concurrent,
            NodeEnum::DropStmt(s) => s.concurrent,
            NodeEnum::ReindexStmt(s) => s.params.iter().any(|p| {
                matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")
            }),
            NodeEnum::VacuumStmt(s) => s.is_vacuumcmd,
            NodeEnum::AlterTableStmt(s) => s.cmds.iter().any(|c| {
                matches!(&c.node, Some(NodeEnum::AlterTableCmd(cmd))
                    if matches!(cmd.def.as_ref().and_then(|d| d.node.as_ref()), Some(NodeEnum::PartitionCmd(p)) if p.concurrent))
            }),
            NodeEnum::TransactionStmt(_)
            | NodeEnum::CreatedbStmt(_)
            | NodeEnum::DropdbStmt(_)
            | NodeEnum::AlterSystemStmt(_)
            | NodeEnum::CreateTableSpaceStmt(_)
            | NodeEnum::DropTableSpaceStmt(_)
            | NodeEnum::CreateSubscriptionStmt(_)
            | NodeEnum::DropSubscriptionStmt(_) => true,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements as one parser split of the whole text gives them.
    fn whole(text: &str) -> Result<Vec<Piece<'_>>, String> {
        let pieces = pg_query::split_with_parser(text).map_err(|e| e.to_string())?;
        Ok(pieces
            .into_iter()
            .filter_map(|piece| {
                let offset = piece.as_ptr() as usize - text.as_ptr() as usize;
                let skip = leading_comments_len(piece);
                let sql = piece[skip..].trim_end();
                let line = 1 + text[..offset + skip].matches('\n').count();
                (!sql.is_empty()).then_some(Piece { sql, line })
            })
            .collect())
    }

    fn chunked(text: &str, chunk: usize) -> Result<Vec<Piece<'_>>, String> {
        Pieces::with_chunk(text, chunk).collect()
    }

    /// Statements whose `;` a cut must not split on: in strings, quoted
    /// names, comments, dollar quotes, a rule's actions, a BEGIN ATOMIC body.
    const TRICKY: &[&str] = &[
        "SELECT 'a;\nb' AS s, E'c\\';d' AS e FROM t WHERE id = $1;",
        "-- a comment; with a semicolon\nSELECT 1 -- another;\n  + 2;",
        "/* block; /* nested; */ still; */ UPDATE \"we;ird\" SET a = 1;",
        "DO $$ BEGIN PERFORM 1; PERFORM 2; END $$;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;",
        "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); DELETE FROM v);",
        "INSERT INTO t (a) VALUES ($1), ('é;ü');",
        "SELECT $tag$;$$;$tag$;",
        ";",
        "SELECT 2",
    ];

    #[test]
    fn chunks_split_as_the_whole_text_does() {
        let text = TRICKY.join("\n\n");
        let want = whole(&text).unwrap();
        assert_eq!(want.len(), TRICKY.len() - 1, "{want:#?}");
        for chunk in [1, 2, 7, 16, 40, 64, 100, 1000, CHUNK] {
            assert_eq!(chunked(&text, chunk).unwrap(), want, "chunks of {chunk}");
        }
    }

    #[test]
    fn an_error_is_the_one_of_the_whole_text_after_the_statements_before_it() {
        let text = format!("{}\nSELECT FROM WHERE (;\n{}", TRICKY[..4].join("\n"), TRICKY[4..].join("\n"));
        let want = whole(&text).unwrap_err();
        for chunk in [1, 7, 64, CHUNK] {
            let got: Vec<_> = Pieces::with_chunk(&text, chunk).collect();
            assert_eq!(got.last().unwrap().as_ref().unwrap_err(), &want, "chunks of {chunk}");
            assert!(got[..got.len() - 1].iter().all(|p| p.is_ok()));
        }
    }

    proptest::proptest! {
        /// Any sequence of those statements, cut at any size: as the whole text splits.
        #[test]
        fn any_text_splits_as_a_whole(picks in proptest::collection::vec(0..TRICKY.len(), 0..24), chunk in 1usize..300) {
            let text = picks.iter().map(|i| TRICKY[*i]).collect::<Vec<_>>().join("\n");
            proptest::prop_assert_eq!(chunked(&text, chunk), whole(&text));
        }
    }

    #[test]
    fn split_keeps_lines_and_finds_non_transactional_statements() {
        let text = "-- header\nCREATE TABLE t (a text DEFAULT ';');\n\n/* c */ CREATE INDEX CONCURRENTLY i ON t (a);\nDO $$ BEGIN PERFORM 1; END $$;\n";
        let stmts = split(text).unwrap();
        assert_eq!(stmts.len(), 3);
        assert_eq!((stmts[0].line, stmts[0].needs_own_transaction), (2, false));
        assert!(stmts[0].sql.starts_with("CREATE TABLE"));
        assert_eq!((stmts[1].line, stmts[1].needs_own_transaction), (4, true));
        assert!(!stmts[2].needs_own_transaction);
        assert!(split("BEGIN; SELECT 1; COMMIT;").unwrap()[0].needs_own_transaction);
        assert!(split("VACUUM t").unwrap()[0].needs_own_transaction);
        assert!(!split("ANALYZE t").unwrap()[0].needs_own_transaction);
        assert!(split("SELEC 1").is_err());
    }
}
