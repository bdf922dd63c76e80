//! A client of the test's own on the rehearsal's database, independent of
//! rehearse: while the load runs, it times a read of a table over and over
//! and counts the load's sessions waiting on a lock, so a test can hold
//! rehearse's figures against its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rehearse::sys::db::ConnInfo;

/// What the test's own client saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Felt {
    /// The longest time one of its reads took (ms).
    pub longest_read_ms: u64,
    /// The most `rehearse-load` sessions seen waiting on a lock at once.
    pub most_load_sessions_waiting: i64,
    /// How many reads it timed.
    pub reads: u64,
}

/// Watches from a thread until [`AppWatch::finish`].
pub struct AppWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Felt>,
}

impl AppWatch {
    /// `server` is the url backend's server; the watch finds the rehearsal's
    /// database (`rehearse_*`) and starts timing once the load's sessions are there.
    pub fn start(server: &ConnInfo, read: &str) -> AppWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let (server, read, flag) = (server.clone(), read.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(watch(server, read, flag))
        });
        AppWatch { stop, thread }
    }

    pub fn finish(self) -> Felt {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

async fn watch(server: ConnInfo, read: String, stop: Arc<AtomicBool>) -> Felt {
    let mut felt = Felt::default();
    let admin = rehearse::sys::db::connect(&server, "postgres", "test-watch").await.unwrap();
    // The rehearsal's database, once the load's sessions are in it.
    let database = loop {
        if stop.load(Ordering::SeqCst) {
            return felt;
        }
        let row = admin
            .query_opt(
                "SELECT datname::text FROM pg_stat_activity WHERE application_name = 'rehearse-load' LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            break row.get::<_, String>(0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let client = rehearse::sys::db::connect(&server, &database, "test-own-client").await.unwrap();
    let counter = rehearse::sys::db::connect(&server, &database, "test-queue-counter").await.unwrap();
    // Counted beside the reads, not after each: a read may wait seconds.
    let counting = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut most = 0_i64;
            while !stop.load(Ordering::SeqCst) {
                let waiting = counter
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rehearse-load' \
                         AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .await;
                match waiting {
                    Ok(row) => most = most.max(row.get(0)),
                    Err(_) => break,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            most
        })
    };
    while !stop.load(Ordering::SeqCst) {
        let t0 = Instant::now();
        // Fails once the database is dropped at the end: the watch is over then.
        if client.simple_query(&read).await.is_err() {
            break;
        }
        felt.longest_read_ms = felt.longest_read_ms.max(t0.elapsed().as_millis() as u64);
        felt.reads += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    felt.most_load_sessions_waiting = counting.await.unwrap_or(0);
    felt
}
