//! Installment plan (capability 7): amount, sum, next due date, history, whether a change
//! is possible now; and the installment change.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Error, Response, run, service_fn};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::entities::iso_date;
use portal_domain::identity::sessions::Access;
use portal_domain::ids::AccountNumber;
use portal_domain::installments::InstallmentService;
use portal_domain::reads::{ScopedReads, installment_plan_view};
use portal_platform::http::Call;
use portal_platform::http::{Problem, problems};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use rust_decimal::Decimal;
use serde::Deserialize;
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

portal_platform::handle_routes!(Api, "installments", {
    GetInstallmentPlan => plan,
    RequestInstallmentChange => change,
});

impl Api {
    async fn plan(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let account = call.path("accountNumber", AccountNumber::parse)?;
        let plan = self.reads.installment_plan(&caller, &account).await.map_err(call.unexpected())?;
        call.answer(
            StatusCode::OK,
            &installment_plan_view(plan.ok_or_else(Problem::not_found)?.entity, SystemClock.today()),
        )
    }

    async fn change(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let account = call.path("accountNumber", AccountNumber::parse)?;
        let (body, key) = call.keyed_json::<ChangeBody>(&self.change_schema)?;
        let answer = self
            .service
            .change(&caller, &account, body.amount, body.valid_from, key)
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
