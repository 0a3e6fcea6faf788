//! Installment plan (capability 7): amount, sum, next due date, history, whether a change
//! is possible now; and the installment change.

use http::{Method, StatusCode};
use jsonschema::Validator;
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::entities::iso_date;
use portal_domain::identity::sessions::Access;
use portal_domain::ids::AccountNumber;
use portal_domain::installments::InstallmentService;
use portal_domain::reads::{ScopedReads, installment_plan_view};
use portal_domain::requests::fingerprint;
use portal_platform::http::{
    Problem, authenticate, idempotency_key, json_response, path_param, problems, read_json, serve,
};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::convert::Infallible;
use time::Date;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeBody {
    amount: Decimal,
    #[serde(with = "iso_date")]
    valid_from: Date,
}

struct Api {
    reads: DynamoReads,
    service: InstallmentService<DynamoReads, WritePath, SystemClock>,
    auth: LiveAuthenticator,
    change_schema: Validator,
}

impl Api {
    async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve(req, |req, method, path, id| async move {
            match (method, path) {
                (Method::GET, path) if path.ends_with("/installment-plan") => self.plan(&req, &path, &id).await,
                (Method::POST, path) if path.ends_with("/installment-changes") => self.change(&req, &path, &id).await,
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

    async fn change(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let account = path_param(path, "/v1/contract-accounts/", "/installment-changes", AccountNumber::parse)
            .ok_or_else(Problem::not_found)?;
        let key = idempotency_key(req)?;
        let (body, raw) = read_json::<ChangeBody>(req, &self.change_schema)?;
        let answer = self
            .service
            .change(&caller, &account, body.amount, body.valid_from, key.map(|k| (k, fingerprint(&raw))))
            .await
            .map_err(|e| problems::change(e, id))?;
        Ok(json_response(StatusCode::ACCEPTED, &answer, id))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api {
        reads: live.reads(),
        service: InstallmentService {
            reads: live.reads(),
            writer: live.writer(),
            clock: SystemClock,
            policy: live.config.installments,
        },
        auth: live.authenticator(),
        change_schema: schemas::compile("installment-change.request.schema.json")?,
    };
    run(service_fn(|req| api.handle(req))).await
}
