//! The load's inputs on a real server: a workload script's statements made
//! replayable on a copy (`rehearse::load::fill::prepare`): each shape of
//! parameter filled from the column it is compared with, assigned to or
//! inserted into, LIMIT and OFFSET given constants, `\set` variables
//! substituted; every rendered statement runs on the copy; the statements
//! that cannot be filled are listed with the reason; no sampled value is
//! in the Debug output.

use rehearse::load::{fill, workload};
use tokio_postgres::Client;

use crate::support::{OwnedServer, Sandbox};

/// The copy: users, their orders (no coupon anywhere), and a table of
/// about 14 MB, over the size a sample reads through TABLESAMPLE.
const COPY: &str = "
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, last_seen_at timestamptz);
INSERT INTO users SELECT g, 'user' || g || '@example.com', now() FROM generate_series(1, 500) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint NOT NULL, status text NOT NULL, total numeric NOT NULL,
                     created_at timestamptz NOT NULL DEFAULT now(), coupon text);
INSERT INTO orders (user_id, status, total)
SELECT g % 500 + 1, (ARRAY['new', 'paid', 'sent'])[g % 3 + 1], g FROM generate_series(1, 3000) g;
CREATE TABLE big (id int NOT NULL, pad text);
INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g;
ANALYZE;";

const WORKLOAD: &str = r#"-- rate: 40/s
\set uid random(1, 500)
SELECT * FROM orders o WHERE o.user_id = :uid AND o.status = $1 ORDER BY created_at DESC LIMIT $2 OFFSET $3;
-- rate: 5/s
UPDATE users SET last_seen_at = $1 WHERE id = $2;
SELECT count(*) FROM orders WHERE status IN ($1, $2) AND total BETWEEN $3 AND $4::numeric;
INSERT INTO orders (user_id, status, total) VALUES ($1, $2, $3);
SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE $1 = u.email FOR UPDATE OF u;
SELECT pad FROM big WHERE id < $1;
SELECT $1 + 1 AS next;
SELECT * FROM orders WHERE coupon = $1;
SELECT * FROM missing_table WHERE id = $1;
SELECT * FROM orders WHERE nonexistent = $1;
"#;

fn run<T>(rt: &tokio::runtime::Runtime, f: impl std::future::Future<Output = T>) -> T {
    rt.block_on(f)
}

#[test]
fn prepare_fills_each_parameter_from_the_copy_and_lists_what_it_cannot() {
    let server = OwnedServer::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client: Client = run(&rt, rehearse::sys::db::connect(&server.conn, "postgres", "test")).unwrap();
    run(&rt, client.batch_execute(COPY)).unwrap();
    let sandbox = Sandbox::new();
    let workload =
        workload::load(&sandbox.write("workload.sql", WORKLOAD)).unwrap_or_else(|e| panic!("{}", e.render()));
    let (replayable, not_replayed) =
        run(&rt, fill::prepare(&client, &workload)).unwrap_or_else(|e| panic!("{}", e.render()));

    let shapes: Vec<(usize, Vec<&str>, bool)> =
        replayable.iter().map(|r| (r.line, r.tables.iter().map(String::as_str).collect(), r.writes)).collect();
    assert_eq!(
        shapes,
        [
            (3, vec!["public.orders"], false),
            (5, vec!["public.users"], true),
            (6, vec!["public.orders"], false),
            (7, vec!["public.orders"], true),
            (8, vec!["public.users", "public.orders"], true),
            (9, vec!["public.big"], false),
        ]
    );
    assert_eq!((replayable[0].rate, replayable[1].rate, replayable[2].rate), (Some(40.0), Some(5.0), None));
    let reasons: Vec<(usize, &str)> = not_replayed.iter().map(|n| (n.line, n.reason.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (10, "$1 is not compared with a column"),
            (11, "public.orders.coupon has no non-null value on the copy"),
            (12, "table missing_table does not exist on the copy"),
            (13, "$1 is compared with nonexistent, which no table of the statement has"),
        ]
    );

    let mut rng = rand::rng();
    let orders_before: i64 = run(&rt, client.query_one("SELECT count(*) FROM orders", &[])).unwrap().get(0);
    for r in &replayable {
        for _ in 0..5 {
            let sql = r.render(&mut rng);
            assert!(!sql.contains('$') && !sql.contains(":uid"), "{sql}");
            run(&rt, client.batch_execute(&sql)).unwrap_or_else(|e| panic!("line {}: {e:?}", r.line));
        }
        let debug = format!("{r:?}");
        assert!(!debug.contains("@example.com") && !debug.contains("'paid'"), "{debug}");
    }
    let orders_after: i64 = run(&rt, client.query_one("SELECT count(*) FROM orders", &[])).unwrap().get(0);
    assert_eq!(orders_after, orders_before + 5, "the INSERT ran with sampled values");

    // The values are the column's: LIMIT and OFFSET constants, the \set in range.
    let first = replayable[0].render(&mut rng);
    assert!(first.ends_with("LIMIT 20 OFFSET 0"), "{first}");
    let uid: i64 = first.split("o.user_id = ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!((1..=500).contains(&uid), "{first}");
    assert!(["'new'", "'paid'", "'sent'"].iter().any(|s| first.contains(&format!("o.status = {s}"))), "{first}");
    let lookup = replayable[4].render(&mut rng);
    let email = lookup.split('\'').nth(1).unwrap();
    assert!(email.starts_with("user") && email.ends_with("@example.com"), "{lookup}");
    let big = replayable[5].render(&mut rng);
    let id: i64 = big.split('\'').nth(1).unwrap().parse().unwrap();
    assert!((1..=60000).contains(&id), "{big}");
}
