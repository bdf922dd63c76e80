//! STUB until the drift-compare branch lands (same API).
use tokio_postgres::Client;

pub struct SchemaEntry {
    pub kind: String,
    pub name: String,
    pub definition: String,
}

pub async fn schema_snapshot(_: &Client, _: &[&str]) -> Result<Vec<SchemaEntry>, tokio_postgres::Error> {
    Ok(Vec::new())
}
