//! Meter readings (capability 6): the anonymous lookup of consumption points and meters,
//! and the submission of a reading.

use lambda_http::{Error, run, service_fn};
use meter_readings::api::Api;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let api = Api::from_env().await?;
    run(service_fn(|req| api.handle(req))).await
}
