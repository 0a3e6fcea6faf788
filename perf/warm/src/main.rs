//! Warm overhead of a function's handler, in process, with in-memory ports: for each
//! request, the API Gateway event parsed from its JSON, the handler (routing, session check,
//! schema validation, domain rules, the answer) and the answer serialised as Lambda returns
//! it. Everything but the AWS calls; `scripts/perf` measures those.
//!
//!     cargo run --release -p warm -- [ITERATIONS]

use futures::executor::block_on;
use lambda_http::Body;
use meter_readings::api::Api;
use portal_domain::clock::FixedClock;
use portal_domain::entities::LoginStatus;
use portal_domain::export::parse_export;
use portal_domain::identity::LoginRecord;
use portal_domain::identity::SessionStore;
use portal_domain::identity::sessions::{Authenticator, SessionPolicy, open_session};
use portal_domain::ids::CustomerNumber;
use portal_domain::memory::{MemoryDirectory, MemoryLimiter, MemoryLogins, MemorySessions, MemoryWriter};
use portal_domain::meter_reading::{AnonymousPolicy, MeterReadingService};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::time::Instant;
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);
const EVENT: &str = include_str!("../../../functions/meter-readings/tests/fixtures/apigw-v2-post.json");

fn event(method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> String {
    let mut e: Value = serde_json::from_str(EVENT).expect("the fixture event");
    e["rawPath"] = json!(path);
    e["routeKey"] = json!(format!("{method} {path}"));
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["routeKey"] = json!(format!("{method} {path}"));
    e["body"] = body.map_or(Value::Null, |b| json!(b.to_string()));
    if let Some(token) = token {
        e["headers"]["authorization"] = json!(format!("Bearer {token}"));
    }
    e.to_string()
}

/// One invocation without the runtime: event in, serialised answer out. Returns the status,
/// the answer's size and the nanoseconds of its three parts (parse, handler, serialise).
fn invoke<A>(handle: &A, event: &str) -> (u16, usize, [u64; 3])
where
    A: Fn(lambda_http::Request) -> lambda_http::Response<Body>,
{
    let started = Instant::now();
    let request = lambda_http::request::from_str(event).expect("an API Gateway event");
    let parsed = Instant::now();
    let response = handle(request);
    let handled = Instant::now();
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => text.as_str(),
        _ => "",
    };
    let headers: serde_json::Map<String, Value> =
        response.headers().iter().map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default()))).collect();
    let answer = json!({ "statusCode": status, "headers": headers, "body": body, "isBase64Encoded": false });
    let size = serde_json::to_vec(&answer).expect("an answer").len();
    let nanos = |a: Instant, b: Instant| b.duration_since(a).as_nanos() as u64;
    (status, size, [nanos(started, parsed), nanos(parsed, handled), nanos(handled, Instant::now())])
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let at = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[at] as f64 / 1000.0
}

/// No budget ever runs out while the same request repeats.
fn unlimited() -> portal_domain::identification::IdentificationLimits {
    portal_domain::identification::IdentificationLimits {
        per_customer_per_hour: u32::MAX,
        budgets: portal_domain::budgets::FailureBudgets { per_address_per_hour: u32::MAX, global_per_hour: u32::MAX },
    }
}

fn main() {
    let iterations: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let export = parse_export(include_str!("../../../fixtures/crm-demo.json")).expect("the demo export");
    let login = export.logins.iter().find(|l| l.username == "jmueller").expect("jmueller").clone();
    let directory = MemoryDirectory::new(export);
    let sessions = MemorySessions::default();
    let record = LoginRecord {
        login_id: login.login_id,
        username: login.username,
        email: login.email,
        status: LoginStatus::Active,
        partner_numbers: vec![CustomerNumber::parse("1000002").expect("a customer number")],
        must_change_password: false,
        password_hash: String::new(),
        password_expires_at: None,
        created_at: NOW,
        session_generation: 0,
    };
    let logins = MemoryLogins::default();
    logins.insert(record.clone());
    let (token, session) = open_session(&record, NOW, &SessionPolicy::default());
    block_on(sessions.create(&session)).expect("a session");
    let service = MeterReadingService {
        directory: directory.clone(),
        limiter: MemoryLimiter::default(),
        writer: MemoryWriter::default(),
        clock: FixedClock(NOW),
        policy: AnonymousPolicy { limits: unlimited(), ..AnonymousPolicy::default() },
    };
    let auth = Authenticator { sessions, logins, clock: FixedClock(NOW), policy: SessionPolicy::default() };
    let api = Api::new(service, directory, auth).expect("the schemas");
    let handle = |req| block_on(api.handle(req)).expect("infallible");

    let token = token.expose_secret();
    let cases = [
        (
            "POST /v1/anonymous/meter-readings/lookup",
            event(
                "POST",
                "/v1/anonymous/meter-readings/lookup",
                Some(json!({"customerNumber": "1000001", "lastName": "Mustermann"})),
                None,
            ),
            200,
        ),
        (
            "POST /v1/anonymous/meter-readings",
            event(
                "POST",
                "/v1/anonymous/meter-readings",
                Some(json!({
                    "customerNumber": "1000001", "lastName": "Mustermann", "meterNumber": "1EMH0012345678",
                    "readingDate": "2026-12-01",
                    "values": [{"register": "HT", "value": "29800"}, {"register": "NT", "value": "19650"}]
                })),
                None,
            ),
            202,
        ),
        ("GET /v1/meters/{m}/readings", event("GET", "/v1/meters/7ELS8135012345/readings", None, Some(token)), 200),
        (
            "GET /v1/meters/{m}/consumption",
            event("GET", "/v1/meters/7ELS8135012345/consumption", None, Some(token)),
            200,
        ),
    ];

    println!("| request | p50 µs | p99 µs | mean µs | of p50: parse / handler / serialise µs | answer bytes |");
    println!("|---|---|---|---|---|---|");
    for (name, event, expected) in &cases {
        for _ in 0..iterations / 10 {
            invoke(&handle, event);
        }
        let mut times = Vec::with_capacity(iterations);
        let mut parts: [Vec<u64>; 3] = Default::default();
        let mut bytes = 0;
        for _ in 0..iterations {
            let started = Instant::now();
            let (status, size, split) = invoke(&handle, event);
            times.push(started.elapsed().as_nanos() as u64);
            assert_eq!(status, *expected, "{name}");
            for (all, part) in parts.iter_mut().zip(split) {
                all.push(part);
            }
            bytes = size;
        }
        times.sort_unstable();
        parts.iter_mut().for_each(|p| p.sort_unstable());
        let mean = times.iter().sum::<u64>() as f64 / times.len() as f64 / 1000.0;
        println!(
            "| `{name}` | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} / {:.1} | {bytes} |",
            percentile(&times, 50.0),
            percentile(&times, 99.0),
            mean,
            percentile(&parts[0], 50.0),
            percentile(&parts[1], 50.0),
            percentile(&parts[2], 50.0),
        );
    }
}
