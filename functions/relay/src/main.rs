//! Outbox relay. On AWS an EventBridge schedule invokes it every minute; locally
//! `cargo run -p relay -- --once` sends everything pending and prints what it did.
//! `cargo run -p relay -- --redrive` (the operator's command) moves the messages of both
//! dead-letter queues back to their queues.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use portal_platform::{aws::Clients, config::Config, write_path::Relay};
use serde_json::Value;

/// Entries younger than this may still be sent by their own request.
const GRACE: time::Duration = time::Duration::seconds(30);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let config = Config::from_env()?;
    let clients = Clients::from_env().await;
    if std::env::args().any(|a| a == "--redrive") {
        use portal_platform::redrive::{Target, redrive};
        let requests =
            redrive(&clients.sqs, &config.requests_dead_letter_url, &config.requests_queue_url, Target::RequestsFifo)
                .await?;
        let inbound =
            redrive(&clients.sqs, &config.inbound_dead_letter_url, &config.inbound_queue_url, Target::Standard).await?;
        println!("{}", serde_json::json!({ "requests": requests, "inbound": inbound }));
        return Ok(());
    }
    let relay = Relay::new(clients.dynamo, clients.sqs, &config.tables, config.requests_queue_url);
    if std::env::args().any(|a| a == "--once") {
        let report = relay.run(time::Duration::ZERO).await?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let relay = &relay;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<Value>| async move { relay.run(GRACE).await.map_err(Error::from) },
    ))
    .await
}
