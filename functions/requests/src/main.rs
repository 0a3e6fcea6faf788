//! The customer's requests (`GET /v1/me/requests`): type, submitted at, processing status
//! and reason, newest first, paginated (`limit`, `cursor`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use lambda_http::{Body, Error, RequestExt, Response, run, service_fn};
use portal_domain::identity::sessions::Access;
use portal_platform::http::Call;
use portal_platform::http::{Problem, problems};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::request_log::RequestLog;
use serde_json::json;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

struct Api {
    log: RequestLog,
    auth: LiveAuthenticator,
}

/// The opaque cursor: where the previous page ended (submitted at, request id).
fn encode_cursor(position: &(String, String)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", position.0, position.1))
}

fn decode_cursor(raw: &str) -> Option<(String, String)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let (at, id) = text.split_once('|')?;
    (at.len() <= 40 && id.len() <= 40).then(|| (at.to_owned(), id.to_owned()))
}

portal_platform::handle_routes!(Api, "requests", {
    ListRequests => list,
});

impl Api {
    async fn list(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let query = call.req.query_string_parameters_ref();
        let get = |name: &str| query.and_then(|q| q.first(name)).map(str::to_owned);
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| problems::invalid_query("limit", "expected 1 to 100"))?,
        };
        let before = get("cursor")
            .map(|c| decode_cursor(&c).ok_or_else(|| problems::invalid_query("cursor", "not a cursor of this list")))
            .transpose()?;
        let (requests, more) = self.log.page(&caller, before, limit).await.map_err(call.unexpected())?;
        let next = more.then(|| requests.last().map(|r| encode_cursor(&r.position()))).flatten();
        call.answer(StatusCode::OK, &json!({ "requests": requests, "nextCursor": next }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api {
        log: RequestLog::new(live.clients.dynamo.clone(), live.config.tables.clone()),
        auth: live.authenticator(),
    };
    run(service_fn(|req| api.handle(req))).await
}
