//! Installment plan (capability 7, read side): amount, sum, next due date, history, and
//! whether a change is possible now.

use http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::identity::sessions::{Access, Authenticator};
use portal_domain::ids::AccountNumber;
use portal_domain::reads::{ScopedReads, installment_plan_view};
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
                (Method::GET, path) if path.ends_with("/installment-plan") => self.plan(&req, &path, &id).await,
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn plan(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let account = path_param(path, "/v1/contract-accounts/", "/installment-plan", AccountNumber::parse)
            .ok_or_else(Problem::not_found)?;
        let plan = self.reads.installment_plan(&caller, &account).await.map_err(|e| Problem::unexpected(id, &e))?;
        let view = installment_plan_view(plan.ok_or_else(Problem::not_found)?.entity, SystemClock.today());
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
