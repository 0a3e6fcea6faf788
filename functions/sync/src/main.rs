//! Inbound sync: applies the CRM's entity changes and request status from the inbound
//! queue (SQS event source with partial batch failures). Locally, where no event source
//! runs, `cargo run -p sync -- --poll` handles everything on the queue once and prints
//! what it did.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use portal_platform::{aws::Clients, config::Config, sync::InboundSync};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    let sync = InboundSync::new(&clients, &config);
    if std::env::args().any(|a| a == "--poll") {
        let report = sync.poll(&config.inbound_queue_url).await?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let sync = &sync;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let records = event.payload["Records"].as_array().cloned().unwrap_or_default();
        let batch: Vec<(String, String)> = records
            .iter()
            .map(|r| {
                let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                (field("messageId"), field("body"))
            })
            .collect();
        let (report, failed) = sync.handle_batch(&batch).await;
        tracing::info!(?report, "inbound batch");
        // Only the failed messages are delivered again.
        Ok::<Value, Error>(json!({
            "batchItemFailures": failed.iter().map(|id| json!({ "itemIdentifier": id })).collect::<Vec<_>>(),
        }))
    }))
    .await
}
