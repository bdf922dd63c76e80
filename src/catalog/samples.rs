//! Values sampled from a column of the copy, to fill the parameters of the
//! workload replayed under load. They are production's data: the caller
//! sends them to the copy and never shows them.

use tokio_postgres::{Client, Error};

use crate::pg::quote_ident;

/// How many distinct values a column's sample keeps.
pub const SAMPLE_VALUES: i64 = 200;

/// How many rows a sample reads at most.
const SAMPLE_ROWS: i64 = 10_000;

/// Blocks (8 kB each by default) a sample reads about, on a big table.
const SAMPLE_BLOCKS: f64 = 1280.0;

/// Up to [`SAMPLE_VALUES`] distinct non-null values of `column` of `table`
/// (a canonical `schema.name`), as text. Never a full scan of a big table:
/// one over [`SAMPLE_BLOCKS`] blocks (its partitions' summed, for a
/// partitioned table: `pg_partition_tree`, 12+) is read through
/// `TABLESAMPLE SYSTEM`, which picks whole blocks at random (9.5+), at a
/// percentage that reads about that many; a smaller one is read up to
/// [`SAMPLE_ROWS`] rows. The text form is what the server casts back from
/// a literal to the column's type in a comparison or an assignment.
pub async fn column_sample(client: &Client, table: &str, column: &str) -> Result<Vec<String>, Error> {
    let blocks: i64 = client
        .query_one(
            "/*rehearse*/ SELECT coalesce(sum(pg_relation_size(relid)), 0)::int8
                      / current_setting('block_size')::int8
               FROM pg_partition_tree(to_regclass($1))",
            &[&table],
        )
        .await?
        .get(0);
    let sample = match blocks as f64 > SAMPLE_BLOCKS {
        true => format!(" TABLESAMPLE SYSTEM ({:.4})", 100.0 * SAMPLE_BLOCKS / blocks as f64),
        false => String::new(),
    };
    let column = quote_ident(column);
    let rows = client
        .query(
            &format!(
                "/*rehearse*/ SELECT DISTINCT v FROM (SELECT {column}::text AS v FROM {table}{sample}
                   WHERE {column} IS NOT NULL LIMIT {SAMPLE_ROWS}) s LIMIT {SAMPLE_VALUES}"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
