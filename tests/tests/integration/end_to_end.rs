//! End to end: HTTP to the functions served by `cargo lambda watch` (started by
//! `scripts/test` on the test stack with the demo data), as the portal sends it.

use integration_tests::{drain, s, sdk_config, test_env};
use portal_platform::aws::Clients;
use serde_json::{Value, json};

async fn post(path: &str, body: &Value, idempotency_key: Option<&str>) -> (u16, String, Value) {
    let mut req = reqwest::Client::new().post(format!("{}{path}", integration_tests::api_url())).json(body);
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, content_type, res.json().await.unwrap())
}

#[tokio::test]
async fn the_portal_submits_an_anonymous_ht_nt_reading() {
    let env = test_env();
    let clients = Clients::from_sdk_config(&sdk_config(integration_tests::EMULATOR).await, None);
    let lookup = json!({"customerNumber": "1000001", "lastName": "  mustermann "});
    let (status, _, view) = post("/v1/anonymous/meter-readings/lookup", &lookup, None).await;
    assert_eq!(status, 200, "{view}");
    let registers = &view["consumptionPoints"][0]["meters"][0]["registers"];
    let last_ht: u64 = registers[0]["lastReading"]["value"].as_str().unwrap().parse().unwrap();
    let last_nt: u64 = registers[1]["lastReading"]["value"].as_str().unwrap().parse().unwrap();

    let today = portal_domain::entities::iso_date::format(portal_domain::clock::Clock::today(
        &portal_domain::clock::SystemClock,
    ));
    let key = uuid::Uuid::new_v4().to_string();
    let reading = json!({
        "customerNumber": "1000001", "lastName": "Mustermann", "meterNumber": "1EMH0012345678", "readingDate": today,
        "values": [{"register": "HT", "value": (last_ht + 42).to_string()}, {"register": "NT", "value": (last_nt + 7).to_string()}]
    });
    let (status, _, first) = post("/v1/anonymous/meter-readings", &reading, Some(&key)).await;
    assert_eq!(status, 202, "{first}");
    let (status, _, again) = post("/v1/anonymous/meter-readings", &reading, Some(&key)).await;
    assert_eq!((status, &again), (202, &first));
    let request_id = first["requestId"].as_str().unwrap();

    // One record and two activities for this request id, and one message carrying it.
    let records = clients
        .dynamo
        .scan()
        .table_name(&env["TABLE_METER_READING_SUBMISSIONS"])
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(records.iter().filter(|r| s(r, "requestId") == request_id).count(), 1);
    let activities =
        clients.dynamo.scan().table_name(&env["TABLE_ACTIVITIES"]).send().await.unwrap().items.unwrap_or_default();
    assert_eq!(activities.iter().filter(|a| s(a, "requestId") == request_id).count(), 2);
    let messages = drain(&clients.sqs, &env["REQUESTS_QUEUE_URL"]).await;
    assert_eq!(messages.iter().filter(|m| m["requestId"] == request_id).count(), 1);

    // Refusals answer problem+json with their code.
    let mut implausible = reading.clone();
    implausible["values"][0]["value"] = json!("1");
    let (status, content_type, problem) = post("/v1/anonymous/meter-readings", &implausible, None).await;
    assert_eq!(
        (status, content_type.as_str(), problem["code"].as_str()),
        (422, "application/problem+json", Some("READING_BELOW_LAST_READING"))
    );
    let (status, _, problem) = post("/v1/anonymous/meter-readings", &json!({"customerNumber": "1000001"}), None).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("VALIDATION_FAILED")));
}

/// Only failed identifications count against a customer number's hourly budget (10 by
/// default): a customer who looks up his meters more often than that is never locked out by
/// his own successes.
#[tokio::test]
async fn successful_identifications_do_not_use_up_the_customer_numbers_budget() {
    let lookup = json!({"customerNumber": "1000001", "lastName": "Mustermann"});
    for i in 0..12 {
        let (status, _, body) = post("/v1/anonymous/meter-readings/lookup", &lookup, None).await;
        assert_eq!(status, 200, "lookup {i}: {body}");
    }
}
