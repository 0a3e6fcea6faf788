//! Sessions and passwords (capability 2): login, logout, password change, password reset.

mod api;

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let api = api::Api::from_env().await?;
    run(service_fn(|req| api.handle(req))).await
}
