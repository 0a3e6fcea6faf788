//! A reading's plausible range, through the meter-readings function's handler with API
//! Gateway's events against the emulator's tables (an isolated stack: a confirmed typo
//! becomes the meter's last reading).
//!
//! The defect: on meter 1EMH0012345678 (last HT 29735 on 2026-11-30) a typo 99810 was
//! accepted as 70,000 kWh in a day, and then blocked the correct 29810 as below the last
//! reading.

use integration_tests::{answer_of, apigw_post, isolated_stack_with_demo};
use meter_readings::api::Api;
use portal_domain::clock::FixedClock;
use portal_domain::meter_reading::{AnonymousPolicy, MeterReadingService};
use serde_json::{Value, json};
use time::macros::datetime;

const FROM: &str = "198.51.100.40";

fn reading(ht: &str, confirmed: Option<bool>) -> Value {
    let mut body = json!({
        "customerNumber": "1000001", "lastName": "Mustermann", "meterNumber": "1EMH0012345678",
        "readingDate": "2026-12-01",
        "values": [{"register": "HT", "value": ht}, {"register": "NT", "value": "19650"}],
    });
    if let Some(confirmed) = confirmed {
        body["confirmedImplausible"] = json!(confirmed);
    }
    body
}

type Handler = Api<
    portal_platform::dynamo::DynamoDirectory,
    portal_platform::dynamo::DynamoLimiter,
    portal_platform::write_path::WritePath,
    FixedClock,
    portal_platform::reads::DynamoReads,
    portal_platform::identity::DynamoSessions,
    portal_platform::identity::DynamoLogins,
>;

/// The meter-readings function's handler on an isolated stack, on 2026-12-01 09:00 UTC.
fn api_on(stack: &integration_tests::Stack) -> Handler {
    let live = stack.live();
    let clock = || FixedClock(datetime!(2026-12-01 09:00 UTC));
    let service = MeterReadingService {
        directory: live.directory(),
        limiter: live.limiter(),
        writer: live.writer(),
        clock: clock(),
        policy: AnonymousPolicy::default(),
    };
    let auth = portal_domain::identity::sessions::Authenticator {
        sessions: live.sessions(),
        logins: live.logins(),
        clock: clock(),
        policy: Default::default(),
    };
    Api::new(service, live.reads(), auth).unwrap()
}

#[tokio::test]
async fn a_typo_is_refused_with_the_allowed_range_and_accepted_when_confirmed() {
    let stack = isolated_stack_with_demo().await;
    let api = api_on(&stack);
    let post = |path: &str, body: Value| apigw_post(path, &body, FROM);

    // The lookup shows each register's range for today (forecasts from the reading history).
    let lookup = json!({"customerNumber": "1000001", "lastName": "Mustermann"});
    let (status, _, view) = answer_of(api.handle(post("/v1/anonymous/meter-readings/lookup", lookup)).await.unwrap());
    assert_eq!(status, 200, "{view}");
    let registers = &view["consumptionPoints"][0]["meters"][0]["registers"];
    assert_eq!(registers[0]["plausibleRange"], json!({"min": "29735", "max": "30574"}), "{registers}");
    assert_eq!(registers[1]["plausibleRange"], json!({"min": "19613", "max": "20192"}), "{registers}");
    let schema = portal_platform::schemas::compile("anonymous-meter-reading-lookup.response.schema.json").unwrap();
    assert!(schema.is_valid(&view), "{view}");

    // The typo: refused, with the range per register and a pointer to the value.
    let path = "/v1/anonymous/meter-readings";
    let (status, code, problem) = answer_of(api.handle(post(path, reading("99810", None))).await.unwrap());
    assert_eq!((status, code.as_deref()), (422, Some("READING_IMPLAUSIBLE")), "{problem}");
    assert_eq!(problem["allowedRanges"], json!([{"register": "HT", "min": "29735", "max": "30574"}]));
    assert_eq!(problem["errors"][0]["pointer"], "/values/0/value");
    let schema = portal_platform::schemas::compile("problem.schema.json").unwrap();
    assert!(schema.is_valid(&problem), "{problem}");
    assert!(stack.drain_queue().await.is_empty(), "nothing written");

    // Confirmed by the customer: accepted, and marked for the CRM in the receipt and message.
    let (status, _, receipt) = answer_of(api.handle(post(path, reading("99810", Some(true)))).await.unwrap());
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["values"][0]["implausible"], true);
    assert!(receipt["values"][1].get("implausible").is_none(), "only the value outside its range");
    let messages = stack.drain_queue().await;
    assert_eq!(messages.len(), 1);
    let payload = &messages[0]["payload"];
    assert_eq!(
        (payload["implausible"].clone(), payload["values"][0]["implausible"].clone()),
        (json!(true), json!(true))
    );
    let event = portal_platform::schemas::compile("events/meter-reading-submitted.schema.json").unwrap();
    assert!(event.is_valid(&messages[0]), "{}", messages[0]);

    // The confirmed typo now blocks the right value, until the CRM deletes it: the last
    // reading goes back to the latest one of the history, and the right value is taken.
    let (status, code, _) = answer_of(api.handle(post(path, reading("29810", None))).await.unwrap());
    assert_eq!((status, code.as_deref()), (422, Some("READING_BELOW_LAST_READING")));
    let deleted = json!({
        "messageType": "crm.entity-deleted", "messageId": "typo-deleted", "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "meterReading", "version": 7, "partnerNumber": "1000001",
        "key": "1EMH0012345678#HT#2026-12-01",
    });
    let outcome = stack.sync().apply(&deleted.to_string()).await.unwrap();
    assert_eq!(outcome, portal_platform::sync::Outcome::Applied);
    let lookup = json!({"customerNumber": "1000001", "lastName": "Mustermann"});
    let (_, _, view) = answer_of(api.handle(post("/v1/anonymous/meter-readings/lookup", lookup)).await.unwrap());
    let ht = &view["consumptionPoints"][0]["meters"][0]["registers"][0];
    assert_eq!(
        (ht["lastReading"]["value"].as_str(), ht["lastReading"]["date"].as_str()),
        (Some("29735"), Some("2026-11-30")),
        "{ht}"
    );
    let (status, _, receipt) = answer_of(api.handle(post(path, reading("29810", None))).await.unwrap());
    assert_eq!(status, 202, "{receipt}");
    stack.drain_queue().await;
    // The deletion sticks: an older version of that reading, delivered late, stays out.
    let late = json!({
        "messageType": "crm.entity-changed", "messageId": "typo-late", "occurredAt": "2026-12-01T09:30:00Z",
        "entityType": "meterReading", "version": 6, "partnerNumber": "1000001",
        "entity": {"meterNumber": "1EMH0012345678", "register": "HT", "date": "2026-12-01", "value": "99810", "source": "CUSTOMER"},
    });
    assert_eq!(stack.sync().apply(&late.to_string()).await.unwrap(), portal_platform::sync::Outcome::Ignored);

    // The CRM replaces a reading: the same date with a corrected value becomes the last one.
    let corrected = json!({
        "messageType": "crm.entity-changed", "messageId": "typo-corrected", "occurredAt": "2026-12-01T11:00:00Z",
        "entityType": "meterReading", "version": 8, "partnerNumber": "1000001",
        "entity": {"meterNumber": "1EMH0012345678", "register": "HT", "date": "2026-12-01", "value": "29805", "source": "NETWORK_OPERATOR"},
    });
    assert_eq!(stack.sync().apply(&corrected.to_string()).await.unwrap(), portal_platform::sync::Outcome::Applied);
    let lookup = json!({"customerNumber": "1000001", "lastName": "Mustermann"});
    let (_, _, view) = answer_of(api.handle(post("/v1/anonymous/meter-readings/lookup", lookup)).await.unwrap());
    assert_eq!(view["consumptionPoints"][0]["meters"][0]["registers"][0]["lastReading"]["value"], "29805");
}

/// The pre-check before a reading is typed: per register the last reading and the values a
/// reading on the date may show, from the served API with a session; another customer's
/// meter is unknown, a future date is refused.
#[tokio::test]
async fn the_reading_range_is_shown_before_a_reading_is_typed() {
    use integration_tests::{call, demo_session};
    use reqwest::Method;
    let erika = demo_session("L-TESTRANGE", &["1000001"], false).await;
    let path = "/v1/meters/1EMH0012345678/reading-range";
    let (status, _, view) = call(Method::GET, path, None, Some(&erika)).await;
    assert_eq!(status, 200, "{view}");
    let schema = portal_platform::schemas::compile("reading-range.response.schema.json").unwrap();
    assert!(schema.is_valid(&view), "{view}");
    for register in view["registers"].as_array().unwrap() {
        // The range starts at the last reading (no least consumption by default) and reaches above it.
        assert_eq!(register["plausibleRange"]["min"], register["lastReading"]["value"], "{register}");
        let (min, max): (f64, f64) = (
            register["plausibleRange"]["min"].as_str().unwrap().parse().unwrap(),
            register["plausibleRange"]["max"].as_str().unwrap().parse().unwrap(),
        );
        assert!(max > min, "{register}");
    }
    let tomorrow = (time::OffsetDateTime::now_utc() + time::Duration::days(2)).date();
    let future = format!("{path}?date={}", portal_domain::entities::iso_date::format(tomorrow));
    let (status, _, problem) = call(Method::GET, &future, None, Some(&erika)).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("READING_DATE_IN_FUTURE")), "{problem}");
    let (status, _, problem) = call(Method::GET, &format!("{path}?date=01.12.2026"), None, Some(&erika)).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("VALIDATION_FAILED")), "{problem}");
    let others = "/v1/meters/7ELS8135012345/reading-range";
    assert_eq!(call(Method::GET, others, None, Some(&erika)).await.0, 404, "Jürgen Müller's meter");
    assert_eq!(call(Method::GET, path, None, None).await.0, 401);
}

/// A contract the CRM ends (a move-out) ends the supply through its meters: the inbound
/// sync carries the end onto the meter, the anonymous lookup no longer shows it, and a
/// reading dated after the end is refused while the move-out reading is still taken. An
/// older version of the contract changes nothing.
#[tokio::test]
async fn a_contract_end_from_the_crm_reaches_its_meter() {
    let stack = isolated_stack_with_demo().await;
    let api = api_on(&stack);
    let post = |path: &str, body: Value| apigw_post(path, &body, FROM);
    let contract = |version: u64, end: Value| {
        json!({
            "messageType": "crm.entity-changed", "messageId": format!("contract-{version}"),
            "occurredAt": "2026-12-01T08:00:00Z", "entityType": "contract", "version": version,
            "partnerNumber": "1000001",
            "entity": {
                "contractNumber": "5000001", "accountNumber": "800000001", "productId": "HEIZSTROM-HTNT",
                "startDate": "2021-03-01", "endDate": end, "installationId": "A-7000001",
                "consumptionPoint": {"maloId": "51234567895", "address": {"street": "Heidestraße", "houseNumber": "17", "postalCode": "51147", "city": "Köln", "country": "DE"}}
            }
        })
        .to_string()
    };
    let sync = stack.sync();
    assert_eq!(sync.apply(&contract(5, json!("2026-11-30"))).await.unwrap(), portal_platform::sync::Outcome::Applied);
    // A late, older version without the end does not bring the meter back.
    assert_eq!(sync.apply(&contract(4, Value::Null)).await.unwrap(), portal_platform::sync::Outcome::Ignored);

    let lookup = json!({"customerNumber": "1000001", "lastName": "Mustermann"});
    let (status, _, view) = answer_of(api.handle(post("/v1/anonymous/meter-readings/lookup", lookup)).await.unwrap());
    assert_eq!((status, view["consumptionPoints"].clone()), (200, json!([])), "{view}");

    let path = "/v1/anonymous/meter-readings";
    let (status, code, problem) = answer_of(api.handle(post(path, reading("29800", None))).await.unwrap());
    assert_eq!((status, code.as_deref()), (422, Some("READING_AFTER_SUPPLY_END")), "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/readingDate");
    assert!(stack.drain_queue().await.is_empty(), "nothing written");
    let mut move_out = reading("29800", None);
    move_out["readingDate"] = json!("2026-11-30");
    let (status, _, receipt) = answer_of(api.handle(post(path, move_out)).await.unwrap());
    assert_eq!(status, 202, "{receipt}");
}

/// A meter exchange in the CRM: the old meter ends on its removal day (its removal reading is
/// still taken, a later one is refused with READING_AFTER_METER_REMOVAL and the lookup drops
/// it), the new meter appears on the same installation with its own registers and readings.
#[tokio::test]
async fn a_meter_exchange_from_the_crm_ends_the_old_meter_and_brings_the_new_one() {
    use portal_platform::sync::Outcome;
    let stack = isolated_stack_with_demo().await;
    let api = api_on(&stack);
    let post = |path: &str, body: Value| apigw_post(path, &body, FROM);
    let change = |entity_type: &str, version: u64, entity: Value| {
        json!({
            "messageType": "crm.entity-changed", "messageId": format!("{entity_type}-{version}"),
            "occurredAt": "2026-12-01T08:00:00Z", "entityType": entity_type, "version": version,
            "partnerNumber": "1000001", "entity": entity,
        })
        .to_string()
    };
    let registers = json!([
        {"code": "HT", "obis": "1-0:1.8.1", "digits": 6, "decimals": 0},
        {"code": "NT", "obis": "1-0:1.8.2", "digits": 6, "decimals": 0}
    ]);
    let meter = |number: &str, removed: Value, registers: Value| {
        json!({
            "meterNumber": number, "installationId": "A-7000001", "commodity": "ELECTRICITY", "unit": "kWh",
            "registers": registers, "removedOn": removed,
        })
    };
    let sync = stack.sync();
    let old = meter("1EMH0012345678", json!("2026-11-30"), registers.clone());
    assert_eq!(sync.apply(&change("meter", 5, old)).await.unwrap(), Outcome::Applied);
    // A late, older version without the removal changes nothing.
    let late = meter("1EMH0012345678", Value::Null, registers);
    assert_eq!(sync.apply(&change("meter", 4, late)).await.unwrap(), Outcome::Ignored);
    let new_registers = json!([{"code": "SINGLE", "obis": "1-0:1.8.0", "digits": 7, "decimals": 1}]);
    let new = meter("1SMG0000000001", Value::Null, new_registers);
    assert_eq!(sync.apply(&change("meter", 6, new)).await.unwrap(), Outcome::Applied);
    let installation =
        json!({"installationId": "A-7000001", "contractNumber": "5000001", "meterNumbers": ["1SMG0000000001"]});
    assert_eq!(sync.apply(&change("installation", 6, installation)).await.unwrap(), Outcome::Applied);
    let first = json!({"meterNumber": "1SMG0000000001", "register": "SINGLE", "date": "2026-11-30", "value": "0", "source": "NETWORK_OPERATOR"});
    assert_eq!(sync.apply(&change("meterReading", 7, first)).await.unwrap(), Outcome::Applied);

    let lookup = json!({"customerNumber": "1000001", "lastName": "Mustermann"});
    let (status, _, view) = answer_of(api.handle(post("/v1/anonymous/meter-readings/lookup", lookup)).await.unwrap());
    assert_eq!(status, 200, "{view}");
    let meters = &view["consumptionPoints"][0]["meters"];
    assert_eq!(meters.as_array().unwrap().len(), 1, "{view}");
    assert_eq!(meters[0]["meterNumber"], "1SMG0000000001");
    assert_eq!(meters[0]["registers"][0]["lastReading"]["value"], "0");
    // The product's typical consumption gives the new meter its range (HEIZSTROM-HTNT, private).
    assert!(meters[0]["registers"][0]["plausibleRange"]["max"].is_string(), "{view}");

    let path = "/v1/anonymous/meter-readings";
    let (status, code, problem) = answer_of(api.handle(post(path, reading("29800", None))).await.unwrap());
    assert_eq!((status, code.as_deref()), (422, Some("READING_AFTER_METER_REMOVAL")), "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/readingDate");
    assert!(stack.drain_queue().await.is_empty(), "nothing written");
    let mut removal = reading("29800", None);
    removal["readingDate"] = json!("2026-11-30");
    let (status, _, receipt) = answer_of(api.handle(post(path, removal)).await.unwrap());
    assert_eq!(status, 202, "the removal reading is taken: {receipt}");
    let new_reading = json!({
        "customerNumber": "1000001", "lastName": "Mustermann", "meterNumber": "1SMG0000000001",
        "readingDate": "2026-12-01", "values": [{"register": "SINGLE", "value": "5.5"}],
    });
    let (status, _, receipt) = answer_of(api.handle(post(path, new_reading)).await.unwrap());
    assert_eq!(status, 202, "{receipt}");
}
