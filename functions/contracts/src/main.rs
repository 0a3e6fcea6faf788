//! Contract details (capability 5): the contracts of a contract account, one contract;
//! the change of an account's billing address and bill recipient.

use http::{Method, StatusCode};
use jsonschema::Validator;
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::billing::BillingService;
use portal_domain::clock::SystemClock;
use portal_domain::entities::{Address, BillRecipient};
use portal_domain::identity::sessions::Access;
use portal_domain::ids::{AccountNumber, ContractNumber};
use portal_domain::reads::{AccountContractsView, ContractView, ScopedReads};
use portal_domain::requests::fingerprint;
use portal_platform::http::{
    Problem, authenticate, idempotency_key, json_response, path_param, problems, read_json, serve,
};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use serde::Deserialize;
use std::convert::Infallible;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BillingBody {
    billing_address: Address,
    bill_recipient: Option<BillRecipient>,
}

struct Api {
    reads: DynamoReads,
    billing: BillingService<DynamoReads, WritePath, SystemClock>,
    auth: LiveAuthenticator,
    billing_schema: Validator,
}

impl Api {
    async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve(req, |req, method, path, id| async move {
            match (method, path) {
                (Method::GET, path) if path.starts_with("/v1/contract-accounts/") => {
                    self.of_account(&req, &path, &id).await
                }
                (Method::GET, path) if path.starts_with("/v1/contracts/") => self.contract(&req, &path, &id).await,
                (Method::PUT, path) if path.ends_with("/billing-address") => {
                    self.change_billing(&req, &path, &id).await
                }
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn of_account(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let account = path_param(path, "/v1/contract-accounts/", "/contracts", AccountNumber::parse)
            .ok_or_else(Problem::not_found)?;
        let found = self.reads.account_contracts(&caller, &account).await.map_err(|e| Problem::unexpected(id, &e))?;
        let (record, contracts) = found.ok_or_else(Problem::not_found)?;
        let view = AccountContractsView::new(record, contracts.into_iter().map(ContractView::from).collect());
        Ok(json_response(StatusCode::OK, &view, id))
    }

    async fn contract(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let number = path_param(path, "/v1/contracts/", "", ContractNumber::parse).ok_or_else(Problem::not_found)?;
        let contract = self.reads.contract(&caller, &number).await.map_err(|e| Problem::unexpected(id, &e))?;
        Ok(json_response(StatusCode::OK, &ContractView::from(contract.ok_or_else(Problem::not_found)?), id))
    }

    async fn change_billing(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let account = path_param(path, "/v1/contract-accounts/", "/billing-address", AccountNumber::parse)
            .ok_or_else(Problem::not_found)?;
        let key = idempotency_key(req)?;
        let (body, raw) = read_json::<BillingBody>(req, &self.billing_schema)?;
        let answer = self
            .billing
            .change(
                &caller,
                &account,
                &body.billing_address,
                body.bill_recipient.as_ref(),
                key.map(|k| (k, fingerprint(&raw))),
            )
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
        billing: BillingService { reads: live.reads(), writer: live.writer(), clock: SystemClock },
        auth: live.authenticator(),
        billing_schema: schemas::compile("billing-address-change.request.schema.json")?,
    };
    run(service_fn(|req| api.handle(req))).await
}
