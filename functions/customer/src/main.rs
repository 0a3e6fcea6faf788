//! Customer data (capability 4): `GET /v1/customers/{customerNumber}`.

use http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::clock::SystemClock;
use portal_domain::identity::sessions::{Access, Authenticator};
use portal_domain::ids::CustomerNumber;
use portal_domain::reads::{CustomerView, ScopedReads};
use portal_platform::http::{Problem, authenticate, json_response, path_param, serve};
use portal_platform::identity::DynamoSessions;
use portal_platform::live::Live;
use portal_platform::reads::DynamoReads;
use std::convert::Infallible;

struct Api {
    reads: DynamoReads,
    auth: Authenticator<DynamoSessions, SystemClock>,
}

impl Api {
    async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve(req, |req, method, path, id| async move {
            match (method, path) {
                (Method::GET, path) if path.starts_with("/v1/customers/") => self.customer(&req, &path, &id).await,
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn customer(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let customer = path_param(path, "/v1/customers/", "", CustomerNumber::parse).ok_or_else(Problem::not_found)?;
        let partner = self.reads.partner(&caller, &customer).await.map_err(|e| Problem::unexpected(id, &e))?;
        let view = CustomerView::from(partner.ok_or_else(Problem::not_found)?);
        Ok(json_response(StatusCode::OK, &view, id))
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api { reads: live.reads(), auth: live.authenticator() };
    run(service_fn(|req| api.handle(req))).await
}
