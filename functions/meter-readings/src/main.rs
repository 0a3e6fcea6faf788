//! Meter readings (capability 6): the anonymous lookup of consumption points and meters,
//! and the submission of a reading.

mod api;

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let api = api::Api::from_env().await?;
    run(service_fn(|req| api.handle(req))).await
}
