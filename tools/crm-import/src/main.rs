//! `crm-import [FILE]` loads an EVI export (`evi-export/1`, default: the demo data) into
//! the mirror tables named by the environment. The whole export is validated first: a
//! bad record is reported by entity, key and field, and nothing is written.

use anyhow::Context;
use portal_platform::{aws::Clients, config::Config, import::import_export};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "fixtures/crm-demo.json".to_owned());
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    let report = import_export(&clients, &config, &text).await.with_context(|| path.clone())?;
    for (table, count) in report {
        println!("{count:>6}  {table}");
    }
    Ok(())
}
