//! Sessions and passwords (capability 2): login, logout, password change, password reset.
// The handler future (routing, metrics and the time budget around every use case) is
// deeper than the compiler's default layout limit when this crate is built on its own.
#![recursion_limit = "256"]

mod api;

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let api = api::Api::from_env().await?;
    run(service_fn(|req| api.handle(req))).await
}
