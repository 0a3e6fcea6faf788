//! The portal account (capability 12): the login and its customer numbers, adding a
//! further customer number, deleting the account.

mod api;

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let api = api::Api::from_env().await?;
    run(service_fn(|req| api.handle(req))).await
}
