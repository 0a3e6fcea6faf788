//! Registration (capability 1): verify customer number and name, then create the portal
//! login and mail its initial password.

use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let api = registration::api::Api::from_env().await?;
    run(service_fn(|req| api.handle(req))).await
}
