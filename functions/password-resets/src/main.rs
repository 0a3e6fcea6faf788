//! Password-reset mails, off the request path: for each reset request the sessions function
//! queued, an active login found by username or e-mail address gets a single-use code by
//! mail; an unknown name gets nothing. SQS event source with partial batch failures.
//! Locally, where no event source runs, `cargo run -p password-resets -- --poll` handles
//! everything on the queue once and prints what it did.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use portal_platform::identity::send_queued_reset as handle;
use portal_platform::live::Live;
use portal_platform::queue;
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let access = &live.access();
    if std::env::args().any(|a| a == "--poll") {
        let report =
            queue::drain(&live.clients.sqs, &live.config.password_reset_queue_url, |b| handle(access, b)).await?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (report, answer) = queue::handle_event(&event.payload, |b| handle(access, b)).await;
        tracing::info!(?report, "reset requests");
        Ok::<Value, Error>(answer)
    }))
    .await
}
