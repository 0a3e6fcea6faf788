//! Products and code lists (capability 11, Schlüsselabruf): public, no session.

use http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::reads::Catalog;
use portal_platform::http::{Problem, json_response, path_param, serve};
use portal_platform::live::Live;
use portal_platform::reads::DynamoReads;
use serde_json::json;
use std::convert::Infallible;

struct Api {
    catalog: DynamoReads,
}

fn list_name(raw: &str) -> Result<String, ()> {
    let ok = (1..=40).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok { Ok(raw.to_owned()) } else { Err(()) }
}

impl Api {
    async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve(req, |_req, method, path, id| async move {
            match (method, path) {
                (Method::GET, path) if path == "/v1/products" => self.products(&id).await,
                (Method::GET, path) if path.starts_with("/v1/code-lists/") => self.code_list(&path, &id).await,
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn products(&self, id: &str) -> Result<Response<Body>, Problem> {
        let products = self.catalog.products().await.map_err(|e| Problem::unexpected(id, &e))?;
        Ok(json_response(StatusCode::OK, &json!({ "products": products }), id))
    }

    async fn code_list(&self, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let name = path_param(path, "/v1/code-lists/", "", list_name).ok_or_else(Problem::not_found)?;
        let values = self.catalog.code_list(&name).await.map_err(|e| Problem::unexpected(id, &e))?;
        if values.is_empty() {
            return Err(Problem::not_found());
        }
        let entries: Vec<_> =
            values.into_iter().map(|v| json!({ "key": v.key, "label": v.label, "routeTo": v.route_to, "terminationRule": v.termination_rule })).collect();
        Ok(json_response(StatusCode::OK, &json!({ "name": name, "values": entries }), id))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api { catalog: live.reads() };
    run(service_fn(|req| api.handle(req))).await
}
