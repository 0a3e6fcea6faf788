//! Meter readings (capability 6): the anonymous lookup of consumption points and meters,
//! and the submission of a reading.

mod api;

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let api = api::Api::from_env().await?;
    run(service_fn(|req| api.handle(req))).await
}
