//! Failure budgets across customers, through the meter-readings function's handler with API
//! Gateway's request context against the emulator's tables. (The local HTTP server gives
//! every request the source address 127.0.0.1; here each event carries its own, as API
//! Gateway's do.)

use integration_tests::{answer_of, apigw_post, isolated_stack_with_demo};
use meter_readings::api::Api;
use portal_domain::clock::SystemClock;
use portal_domain::meter_reading::{AnonymousPolicy, MeterReadingService};
use serde_json::json;

fn lookup(customer: &str, last_name: &str, source_ip: &str) -> lambda_http::Request {
    let body = json!({"customerNumber": customer, "lastName": last_name});
    apigw_post("/v1/anonymous/meter-readings/lookup", &body, source_ip)
}

/// Status, `Retry-After` and problem code of one answer.
fn answer(response: lambda_http::Response<lambda_http::Body>) -> (u16, Option<String>, Option<String>) {
    let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, code, _) = answer_of(response);
    (status, retry, code)
}

/// The attack: one client guesses 30 different customer numbers (each number's own budget
/// is never reached). Before, all 30 answered 404; now the source address's budget (20 per
/// hour by default) answers 429 with `Retry-After` from the 21st on, while the same customer
/// from another address, and a right guess counted nowhere, still pass.
#[tokio::test]
async fn thirty_failed_identifications_across_thirty_customer_numbers_from_one_address_meet_429() {
    let stack = isolated_stack_with_demo().await;
    let live = stack.live();
    let service = MeterReadingService {
        directory: live.directory(),
        limiter: live.limiter(),
        writer: live.writer(),
        clock: SystemClock,
        policy: AnonymousPolicy::default(),
    };
    let api = Api::new(service, live.reads(), live.authenticator()).unwrap();
    let attacker = "203.0.113.66";
    // A right identification from the same address first: it gives its slots back.
    let (status, _, _) = answer(api.handle(lookup("1000001", "Mustermann", attacker)).await.unwrap());
    assert_eq!(status, 200);

    let mut answers = Vec::new();
    for n in 0..30 {
        answers.push(answer(api.handle(lookup(&(3_000_000 + n).to_string(), "Niemand", attacker)).await.unwrap()));
    }
    let first_429 = answers.iter().position(|(status, _, _)| *status == 429).expect("a 429");
    assert_eq!(first_429, 20, "{answers:?}");
    assert!(answers[..20].iter().all(|(s, _, code)| *s == 404 && code.as_deref() == Some("CUSTOMER_NOT_FOUND")));
    for (status, retry, code) in &answers[20..] {
        assert_eq!((*status, code.as_deref()), (429, Some("TOO_MANY_ATTEMPTS")));
        let seconds: i64 = retry.as_deref().expect("Retry-After").parse().unwrap();
        assert!((1..=3600).contains(&seconds), "until the hour ends: {seconds}");
    }
    // Even a right guess from that address waits now; from another address it passes.
    assert_eq!(answer(api.handle(lookup("1000001", "Mustermann", attacker)).await.unwrap()).0, 429);
    assert_eq!(answer(api.handle(lookup("1000001", "Mustermann", "198.51.100.7")).await.unwrap()).0, 200);

    // IPv6 counts by /64: addresses of one network share a budget.
    for n in 0..20 {
        let ip = format!("2001:db8:66:1::{:x}", n + 1);
        assert_eq!(answer(api.handle(lookup(&(3_100_000 + n).to_string(), "Niemand", &ip)).await.unwrap()).0, 404);
    }
    let (status, _, _) = answer(api.handle(lookup("3100099", "Niemand", "2001:db8:66:1:ffff::1")).await.unwrap());
    assert_eq!(status, 429, "same /64");
    let (status, _, _) = answer(api.handle(lookup("3100099", "Niemand", "2001:db8:66:2::1")).await.unwrap());
    assert_eq!(status, 404, "another /64");
}
