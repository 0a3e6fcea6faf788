//! Bank details (capability 8, read side): payment method and accounts, IBANs masked.

use http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::clock::SystemClock;
use portal_domain::identity::sessions::{Access, Authenticator};
use portal_domain::ids::AccountNumber;
use portal_domain::reads::{BankDetailsView, ScopedReads};
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
                (Method::GET, path) if path.ends_with("/bank-details") => self.bank_details(&req, &path, &id).await,
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn bank_details(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let account = path_param(path, "/v1/contract-accounts/", "/bank-details", AccountNumber::parse)
            .ok_or_else(Problem::not_found)?;
        let details = self.reads.bank_details(&caller, &account).await.map_err(|e| Problem::unexpected(id, &e))?;
        Ok(json_response(StatusCode::OK, &BankDetailsView::from(details.ok_or_else(Problem::not_found)?), id))
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api { reads: live.reads(), auth: live.authenticator() };
    run(service_fn(|req| api.handle(req))).await
}
