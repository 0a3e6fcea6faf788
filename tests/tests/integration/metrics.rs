//! The functions' CloudWatch metrics (EMF lines on stdout), read from their logs: the served
//! API's log for a committed request and a refusal, the relay's and the sync's output for a
//! send and an apply.

use integration_tests::{api_url, sdk_config, test_env};
use portal_platform::aws::Clients;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The EMF lines of a log: JSON objects with an `_aws` member.
fn metric_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.contains("\"_aws\""))
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v["_aws"]["CloudWatchMetrics"].is_array())
        .collect()
}

/// Checks the EMF structure: namespace, every named metric and dimension present at the top.
fn assert_emf(line: &Value) {
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "EviPortal", "{line}");
    assert!(line["_aws"]["Timestamp"].as_i64().is_some_and(|t| t > 1_700_000_000_000), "{line}");
    for set in directive["Dimensions"].as_array().unwrap() {
        for name in set.as_array().unwrap() {
            assert!(line[name.as_str().unwrap()].is_string(), "dimension {name} has no value: {line}");
        }
    }
    for metric in directive["Metrics"].as_array().unwrap() {
        assert!(line[metric["Name"].as_str().unwrap()].is_number(), "{line}");
    }
}

async fn api_log_line(request_id: &str, metric: &str) -> Value {
    let path = std::env::var("PORTAL_API_LOG").expect("PORTAL_API_LOG: run the tests with scripts/test");
    // The function writes its line before it answers; the log file may lag a little.
    for _ in 0..20 {
        let log = std::fs::read_to_string(&path).unwrap();
        if let Some(line) =
            metric_lines(&log).into_iter().find(|l| l["requestId"] == request_id && l.get(metric).is_some())
        {
            return line;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no {metric} line of request {request_id} in {path}");
}

#[tokio::test]
async fn a_committed_request_and_a_refusal_are_counted_in_the_function_log() {
    // A logged-in customer's message: anonymous ones share the test client's hourly limit per
    // address with the other tests.
    let sender = format!("metrics-{}@example.org", uuid::Uuid::new_v4().simple());
    let bakery = integration_tests::demo_session("L-0000003", &["1000003"], false).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", api_url()))
        .bearer_auth(&bakery)
        .json(&json!({"reason": "OTHER", "subject": "Frage", "text": format!("Metrics, Antwort an {sender}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let line = api_log_line(&id, "RequestsCommitted").await;
    assert_emf(&line);
    assert_eq!((line["RequestsCommitted"].as_f64(), line["RequestType"].as_str()), (Some(1.0), Some("MESSAGE")));
    assert_eq!(line["Function"], "messages");
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Stack"], ["Stack", "Function"], ["Stack", "RequestType"]])
    );
    assert!(!line.to_string().contains(&sender), "no e-mail address in a metric line");

    let response = reqwest::Client::new().get(format!("{}/v1/me", api_url())).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let line = api_log_line(&id, "Refusals").await;
    assert_emf(&line);
    assert_eq!((line["Refusals"].as_f64(), line["Code"].as_str()), (Some(1.0), Some("UNAUTHENTICATED")));
    assert_eq!(line["Function"], "account");
}

/// A stack of its own in the default account (the binaries cannot add the emulator's account
/// header): the test stack's environment with every name under a new stack name.
async fn own_stack() -> (String, HashMap<String, String>) {
    let env = test_env();
    let emulator = env["AWS_ENDPOINT_URL"].clone();
    let test_stack = env["PORTAL_STACK_NAME"].clone();
    let name = format!("metrics-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{emulator}/"))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/eu-central-1/cloudformation/aws4_request, SignedHeaders=host, Signature=0")
        .form(&[("Action", "CreateStack"), ("Version", "2010-05-15"), ("StackName", &name), ("TemplateBody", &template)])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "CreateStack: {}", response.text().await.unwrap_or_default());
    let env = env.into_iter().map(|(k, v)| (k, v.replace(&test_stack, &name))).collect();
    (name, env)
}

/// Runs a function's binary (built next to this test binary) with `env` and `arg`; its stdout.
fn run(binary: &str, env: &HashMap<String, String>, arg: &str) -> String {
    let dir = std::env::current_exe().unwrap().parent().and_then(|deps| deps.parent()).unwrap().to_owned();
    let path = dir.join(binary);
    assert!(path.exists(), "{} is missing: scripts/test builds every binary first", path.display());
    let out = std::process::Command::new(&path).envs(env).arg(arg).output().unwrap();
    assert!(out.status.success(), "{binary} {arg}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_relay_send_and_a_sync_apply_are_counted_in_their_output() {
    let (stack, env) = own_stack().await;
    let clients = Clients::from_sdk_config(&sdk_config(&env["AWS_ENDPOINT_URL"]).await, None);
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());

    // An outbox entry whose message did not go out two minutes ago.
    let created = time::OffsetDateTime::now_utc() - time::Duration::minutes(2);
    let request_id = uuid::Uuid::new_v4().to_string();
    clients
        .dynamo
        .put_item()
        .table_name(&env["TABLE_OUTBOX"])
        .item("requestId", s(&request_id))
        .item("pendingCustomer", s("1000001"))
        .item("createdAt", s(&portal_domain::entities::timestamp::format(created)))
        .item("status", s("PENDING"))
        .item("requestType", s("MESSAGE"))
        .item("messageGroupId", s("1000001"))
        .item("body", s(&json!({"requestId": request_id}).to_string()))
        .send()
        .await
        .unwrap();
    let lines = metric_lines(&run("relay", &env, "--once"));
    let line = lines.iter().find(|l| l.get("RelaySent").is_some()).expect("the relay's metric line");
    assert_emf(line);
    assert_eq!((line["Stack"].as_str(), line["Function"].as_str()), (Some(stack.as_str()), Some("relay")));
    assert_eq!((line["RelaySent"].as_f64(), line["RelaySendFailed"].as_f64()), (Some(1.0), Some(0.0)));
    assert_eq!(line["OutboxPending"].as_f64(), Some(1.0));
    let age = line["OutboxOldestPendingAgeSeconds"].as_f64().unwrap();
    assert!((110.0..600.0).contains(&age), "{age}");
    // Every run reports, also with nothing pending.
    let lines = metric_lines(&run("relay", &env, "--once"));
    let line = lines.iter().find(|l| l.get("RelaySent").is_some()).unwrap();
    assert_eq!((line["RelaySent"].as_f64(), line["OutboxOldestPendingAgeSeconds"].as_f64()), (Some(0.0), Some(0.0)));

    // A CRM change through the inbound queue.
    let change = json!({
        "messageType": "crm.entity-changed", "messageId": "metrics-1",
        "occurredAt": "2026-12-01T10:00:00Z", "entityType": "businessPartner", "version": 1,
        "entity": {
            "partnerNumber": "1000009", "partnerType": "PERSON", "salutation": "Frau", "title": null,
            "firstName": "Erika", "lastName": "Beispiel",
            "address": {"street": "Heidestraße", "houseNumber": "17", "postalCode": "51147", "city": "Köln", "country": "DE"},
            "phone": null, "mobile": null, "fax": null, "email": null,
            "notificationConsent": false, "accountManager": null
        }
    });
    for body in [change.to_string(), "not a message".to_owned()] {
        clients.sqs.send_message().queue_url(&env["INBOUND_QUEUE_URL"]).message_body(body).send().await.unwrap();
    }
    let lines = metric_lines(&run("sync", &env, "--poll"));
    let of = |entity: &str| lines.iter().find(|l| l["EntityType"] == entity).cloned();
    let applied = of("businessPartner").expect("a line for the business partner");
    assert_emf(&applied);
    assert_eq!((applied["SyncApplied"].as_f64(), applied["SyncDeadLettered"].as_f64()), (Some(1.0), Some(0.0)));
    assert_eq!(applied["Function"], "sync");
    let unusable = of("unknown").expect("a line for the unreadable message");
    assert_eq!(unusable["SyncDeadLettered"].as_f64(), Some(1.0));
}
