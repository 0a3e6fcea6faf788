//! Products and code lists (capability 11, Schlüsselabruf): public, no session.

use http::StatusCode;
use lambda_http::{Body, Error, Response, run, service_fn};
use portal_domain::reads::Catalog;
use portal_platform::http::Call;
use portal_platform::http::Problem;
use portal_platform::live::Live;
use portal_platform::reads::DynamoReads;
use serde_json::json;

struct Api {
    catalog: DynamoReads,
}

fn list_name(raw: &str) -> Result<String, ()> {
    let ok = (1..=40).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok { Ok(raw.to_owned()) } else { Err(()) }
}

portal_platform::handle_routes!(Api, "catalog", {
    GetProducts => products,
    GetCodeList => code_list,
});

impl Api {
    async fn products(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let products = self.catalog.products().await.map_err(call.unexpected())?;
        call.answer(StatusCode::OK, &json!({ "products": products }))
    }

    async fn code_list(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let name = call.path("name", list_name)?;
        let values = self.catalog.code_list(&name).await.map_err(call.unexpected())?;
        if values.is_empty() {
            return Err(Problem::not_found());
        }
        let entries: Vec<_> = values
            .into_iter()
            .map(|v| json!({ "key": v.key, "label": v.label, "routeTo": v.route_to, "terminationRule": v.termination_rule }))
            .collect();
        call.answer(StatusCode::OK, &json!({ "name": name, "values": entries }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api { catalog: live.reads() };
    run(service_fn(|req| api.handle(req))).await
}
