//! The dashboard (capability 3): the login's business partners, contract accounts,
//! contracts and meters.

use http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::dashboard::dashboard;
use portal_domain::identity::sessions::Access;
use portal_platform::dynamo::DynamoDirectory;
use portal_platform::http::{Problem, authenticate, json_response, serve};
use portal_platform::live::{Live, LiveAuthenticator};
use std::convert::Infallible;

struct Api {
    directory: DynamoDirectory,
    auth: LiveAuthenticator,
}

impl Api {
    async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve(req, |req, method, path, id| async move {
            match (method, path) {
                (Method::GET, path) if path == "/v1/me/dashboard" => self.dashboard(&req, &id).await,
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn dashboard(&self, req: &Request, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let view =
            dashboard(&self.directory, &caller, SystemClock.today()).await.map_err(|e| Problem::unexpected(id, &e))?;
        Ok(json_response(StatusCode::OK, &view, id))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api { directory: live.directory(), auth: live.authenticator() };
    run(service_fn(|req| api.handle(req))).await
}
