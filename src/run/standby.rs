//! The standby stage's record: what the report says of the standby.

use crate::backend::Standby;
use crate::catalog;
use crate::error::{ErrorKind, Result};
use crate::observe::StandbyOptions;
use crate::report::{Setting, StandbyInfo};
use crate::sys::db;

/// The settings that decide what a standby's readers feel and how far it trails.
const SETTINGS: [&str; 3] = ["max_standby_streaming_delay", "hot_standby_feedback", "recovery_min_apply_delay"];

/// The standby as the report describes it, its settings read from it.
pub async fn describe(standby: &Standby, options: &StandbyOptions) -> Result<StandbyInfo> {
    let conn = standby.conn();
    let client = db::connect(conn, &conn.dbname, "rehearse-standby").await.map_err(|e| {
        ErrorKind::ConnectionFailed.because(format!("cannot connect to the standby ({})", conn.masked(&conn.dbname)), e)
    })?;
    let settings = catalog::settings(&client, &SETTINGS)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot read the standby's settings", e))?;
    Ok(StandbyInfo {
        source: standby.source(),
        server: conn.masked(&conn.dbname),
        interval_ms: options.interval.as_millis() as u64,
        lag_threshold_ms: options.threshold.as_millis() as u64,
        settings: settings.into_iter().map(|(name, value)| Setting { name, value }).collect(),
    })
}
