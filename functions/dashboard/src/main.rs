//! The dashboard (capability 3): the login's business partners, contract accounts,
//! contracts and meters.

use http::StatusCode;
use lambda_http::{Body, Error, Response, run, service_fn};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::dashboard::dashboard;
use portal_domain::identity::sessions::Access;
use portal_platform::dynamo::DynamoDirectory;
use portal_platform::http::Call;
use portal_platform::http::Problem;
use portal_platform::live::{Live, LiveAuthenticator};

struct Api {
    directory: DynamoDirectory,
    auth: LiveAuthenticator,
}

portal_platform::handle_routes!(Api, "dashboard", {
    GetDashboard => dashboard,
});

impl Api {
    async fn dashboard(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let view = dashboard(&self.directory, &caller, SystemClock.today()).await.map_err(call.unexpected())?;
        call.answer(StatusCode::OK, &view)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api { directory: live.directory(), auth: live.authenticator() };
    run(service_fn(|req| api.handle(req))).await
}
