//! Contract details (capability 5): the contracts of a contract account, one contract;
//! the change of an account's billing address and bill recipient.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Error, Response, run, service_fn};
use portal_domain::billing::BillingService;
use portal_domain::clock::SystemClock;
use portal_domain::entities::{Address, BillRecipient};
use portal_domain::identity::sessions::Access;
use portal_domain::ids::{AccountNumber, ContractNumber};
use portal_domain::reads::{AccountContractsView, ContractView, ScopedReads};
use portal_platform::http::{Call, Problem, problems};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use serde::Deserialize;

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

portal_platform::handle_routes!(Api, "contracts", {
    GetAccountContracts => of_account,
    GetContract => contract,
    ChangeBillingAddress => change_billing,
});

impl Api {
    async fn of_account(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let account = call.path("accountNumber", AccountNumber::parse)?;
        let found = self.reads.account_contracts(&caller, &account).await.map_err(call.unexpected())?;
        let (record, contracts) = found.ok_or_else(Problem::not_found)?;
        let view = AccountContractsView::new(record, contracts.into_iter().map(ContractView::from).collect());
        call.answer(StatusCode::OK, &view)
    }

    async fn contract(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let number = call.path("contractNumber", ContractNumber::parse)?;
        let contract = self.reads.contract(&caller, &number).await.map_err(call.unexpected())?;
        call.answer(StatusCode::OK, &ContractView::from(contract.ok_or_else(Problem::not_found)?))
    }

    async fn change_billing(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let account = call.path("accountNumber", AccountNumber::parse)?;
        let (body, key) = call.keyed_json::<BillingBody>(&self.billing_schema)?;
        let answer = self
            .billing
            .change(&caller, &account, &body.billing_address, body.bill_recipient.as_ref(), key)
            .await
            .map_err(|e| problems::change(e, &call.id))?;
        call.answer(StatusCode::ACCEPTED, &answer)
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
