//! The shared write path and the anonymous reading service on the emulator.

use integration_tests::{Stack, isolated_stack_with_demo, s};
use portal_domain::clock::FixedClock;
use portal_domain::ids::{CustomerNumber, IdempotencyKey, MeterNumber, RegisterCode};
use portal_domain::meter_reading::{AnonymousReading, Identification, MeterReadingError};
use portal_domain::plausibility::SubmittedValue;
use portal_domain::ports::{CustomerDirectory, RequestWriter};
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;
use time::macros::{date, datetime};

const CLOCK: FixedClock = FixedClock(datetime!(2026-12-01 09:00 UTC));

fn erika_reading(ht: &str, nt: &str, key: Option<&str>) -> AnonymousReading {
    AnonymousReading {
        identification: Identification {
            customer: CustomerNumber::parse("1000001").unwrap(),
            name: "Mustermann".into(),
            source: Default::default(),
            bill: None,
        },
        meter: MeterNumber::parse("1EMH0012345678").unwrap(),
        reading_date: date!(2026 - 12 - 01),
        values: [("HT", ht), ("NT", nt)]
            .iter()
            .map(|(c, v)| SubmittedValue {
                register: RegisterCode::parse(c).unwrap(),
                value: Decimal::from_str(v).unwrap(),
            })
            .collect(),
        confirmed_implausible: false,
        idempotency: key.map(|k| (IdempotencyKey::parse(k).unwrap(), format!("fingerprint-{ht}-{nt}"))),
    }
}

fn event_schema() -> jsonschema::Validator {
    portal_platform::schemas::compile("events/meter-reading-submitted.schema.json").unwrap()
}

/// Nothing of a request was written: no record, activity, outbox entry or message.
async fn assert_nothing_written(stack: &Stack) {
    let t = &stack.config.tables;
    assert_eq!(stack.count(&t.meter_reading_submissions).await, 0);
    assert_eq!(stack.count(&t.activities).await, 0);
    assert_eq!(stack.count(&t.outbox).await, 0);
    assert_eq!(stack.count(&t.idempotency_keys).await, 0);
    assert!(stack.drain_queue().await.is_empty());
}

#[tokio::test]
async fn a_reading_commits_record_both_activities_and_exactly_one_valid_message() {
    let stack = isolated_stack_with_demo().await;
    let service = stack.service(&stack.clients, CLOCK);
    let answer = service.submit(erika_reading("29810", "19650", None)).await.unwrap();
    let request_id = answer["requestId"].as_str().unwrap().to_owned();
    let t = &stack.config.tables;

    let records = stack.items(&t.meter_reading_submissions).await;
    assert_eq!(records.len(), 1);
    assert_eq!(s(&records[0], "requestId"), request_id);
    assert_eq!(s(&records[0], "partnerNumber"), "1000001");
    assert_eq!(s(&records[0], "status"), "SUBMITTED");

    let mut owners: Vec<String> = stack.items(&t.activities).await.iter().map(|a| s(a, "ownerKey")).collect();
    owners.sort();
    assert_eq!(owners, ["BP#1000001", "INST#A-7000001"]);

    let outbox = stack.items(&t.outbox).await;
    assert_eq!((s(&outbox[0], "status"), outbox[0].contains_key("pendingCustomer")), ("SENT".to_owned(), false));

    // The reading is now the meter's last reading.
    let meters = stack.items(&t.meters).await;
    let meter = meters.iter().find(|m| s(m, "meterNumber") == "1EMH0012345678").unwrap();
    let last: Vec<Value> = serde_dynamo::from_attribute_value(meter["lastReadings"].clone()).unwrap();
    assert!(
        last.iter().any(|l| l["register"] == "HT" && l["value"] == "29810" && l["date"] == "2026-12-01"),
        "{last:?}"
    );

    let messages = stack.drain_queue().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["requestId"], Value::from(request_id));
    assert_eq!(messages[0]["payload"]["values"][0]["value"], "29810");
    let schema = event_schema();
    assert!(
        schema.is_valid(&messages[0]),
        "{:?}",
        schema.iter_errors(&messages[0]).map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_changes_nothing() {
    let stack = isolated_stack_with_demo().await;
    let service = stack.service(&stack.clients, CLOCK);
    let first = service.submit(erika_reading("29810", "19650", Some("retry-1"))).await.unwrap();
    let second = service.submit(erika_reading("29810", "19650", Some("retry-1"))).await.unwrap();
    assert_eq!(first, second);
    let t = &stack.config.tables;
    assert_eq!(stack.count(&t.meter_reading_submissions).await, 1);
    assert_eq!(stack.count(&t.activities).await, 2);
    assert_eq!(stack.drain_queue().await.len(), 1);

    // The same key for a different body is refused and writes nothing new.
    let reused = service.submit(erika_reading("29811", "19650", Some("retry-1"))).await.unwrap_err();
    assert!(matches!(reused, MeterReadingError::IdempotencyKeyReused), "{reused:?}");
    assert_eq!(stack.count(&t.meter_reading_submissions).await, 1);
}

/// The emulator does not isolate concurrent transactions (a cancelled one can undo a
/// committed one), so races are tested deterministically: the second request's
/// transaction meets the first one's idempotency claim.
#[tokio::test]
async fn a_transaction_meeting_a_claimed_idempotency_key_writes_nothing() {
    let stack = isolated_stack_with_demo().await;
    let t = &stack.config.tables;
    let customer = CustomerNumber::parse("1000001").unwrap();
    let directory = portal_platform::dynamo::DynamoDirectory::new(stack.clients.dynamo.clone(), t.clone());
    let partner = directory.partner(&customer).await.unwrap().unwrap();
    let meter = directory.meter(&customer, &MeterNumber::parse("1EMH0012345678").unwrap()).await.unwrap().unwrap();

    let first =
        stack.service(&stack.clients, CLOCK).submit(erika_reading("29810", "19650", Some("race-1"))).await.unwrap();
    stack.drain_queue().await;

    // The loser of the race read the meter before the winner committed.
    let values = erika_reading("29810", "19650", None).values;
    let day = date!(2026 - 12 - 01);
    let accepted = portal_domain::plausibility::check_reading(&meter, day, &values, day, &Default::default()).unwrap();
    let claim = portal_domain::requests::IdempotencyClaim {
        scope: portal_domain::requests::IdempotencyScope::new(
            "anonymous-meter-reading",
            "1000001",
            &IdempotencyKey::parse("race-1").unwrap(),
        ),
        fingerprint: "fingerprint-29810-19650".into(),
    };
    let request = portal_domain::meter_reading::reading_request(
        &partner.partner_number,
        &meter,
        day,
        &accepted,
        Some(claim.clone()),
        CLOCK.0,
        portal_domain::requests::Channel::PortalAnonymous,
    );
    let result = stack.write_path(&stack.clients).commit(request).await;
    assert!(matches!(result, Err(portal_domain::requests::WriteError::IdempotencyKeyTaken)), "{result:?}");
    assert_eq!(stack.count(&t.meter_reading_submissions).await, 1);
    assert_eq!(stack.count(&t.activities).await, 2);
    assert!(stack.drain_queue().await.is_empty());
    // What the loser answers: the winner's answer.
    let stored = stack.write_path(&stack.clients).find_answer(&claim.scope).await.unwrap().unwrap();
    assert_eq!(stored.body, first);
}

#[tokio::test]
async fn a_message_that_could_not_be_sent_is_delivered_by_the_relay_exactly_once() {
    let stack = isolated_stack_with_demo().await;
    let service = stack.service(&stack.clients_with_sqs_down(), CLOCK);
    let answer = service.submit(erika_reading("29810", "19650", None)).await.unwrap();
    let t = &stack.config.tables;

    // Committed and answered, but the message is pending.
    assert_eq!(stack.count(&t.meter_reading_submissions).await, 1);
    let outbox = stack.items(&t.outbox).await;
    assert_eq!(s(&outbox[0], "status"), "PENDING");
    assert!(stack.drain_queue().await.is_empty());

    let report = stack.relay().run(time::Duration::ZERO).await.unwrap();
    assert_eq!((report.sent, report.failed, report.deferred), (1, 0, 0));
    let again = stack.relay().run(time::Duration::ZERO).await.unwrap();
    assert_eq!(again.sent, 0);

    let messages = stack.drain_queue().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["requestId"], answer["requestId"]);
    assert!(event_schema().is_valid(&messages[0]));
    assert_eq!(s(&stack.items(&t.outbox).await[0], "status"), "SENT");
}

#[tokio::test]
async fn the_relay_leaves_young_entries_to_their_request() {
    let stack = isolated_stack_with_demo().await;
    let service = stack.service(&stack.clients_with_sqs_down(), FixedClock(time::OffsetDateTime::now_utc()));
    // A reading dated today (Berlin) against the real clock.
    let mut reading = erika_reading("29810", "19650", None);
    reading.reading_date = portal_domain::clock::Clock::today(&portal_domain::clock::SystemClock);
    service.submit(reading).await.unwrap();
    let report = stack.relay().run(time::Duration::minutes(5)).await.unwrap();
    assert_eq!((report.sent, report.deferred), (0, 1));
    assert!(stack.drain_queue().await.is_empty());
}

#[tokio::test]
async fn a_customers_messages_stay_in_order_when_one_waits_for_the_relay() {
    let stack = isolated_stack_with_demo().await;
    // A's message cannot be sent ...
    let down = stack.service(&stack.clients_with_sqs_down(), CLOCK);
    let a = down.submit(erika_reading("29810", "19650", None)).await.unwrap();
    // ... so B, though SQS is back, must not overtake it.
    let later = FixedClock(datetime!(2026-12-01 09:05 UTC));
    let b = stack.service(&stack.clients, later).submit(erika_reading("29820", "19660", None)).await.unwrap();
    assert!(stack.drain_queue().await.is_empty(), "B was sent before A");
    let report = stack.relay().run(time::Duration::ZERO).await.unwrap();
    assert_eq!(report.sent, 2);
    let order: Vec<Value> = stack.drain_queue().await.into_iter().map(|m| m["requestId"].clone()).collect();
    assert_eq!(order, [a["requestId"].clone(), b["requestId"].clone()]);
}

#[tokio::test]
async fn a_reading_checked_against_stale_last_readings_is_refused_and_writes_nothing() {
    let stack = isolated_stack_with_demo().await;
    let t = &stack.config.tables;
    let customer = CustomerNumber::parse("1000001").unwrap();
    let meter_number = MeterNumber::parse("1EMH0012345678").unwrap();
    let directory = portal_platform::dynamo::DynamoDirectory::new(stack.clients.dynamo.clone(), t.clone());
    let partner = directory.partner(&customer).await.unwrap().unwrap();
    let stale = directory.meter(&customer, &meter_number).await.unwrap().unwrap();

    // Another reading of the meter commits first.
    stack.service(&stack.clients, CLOCK).submit(erika_reading("29810", "19650", None)).await.unwrap();
    stack.drain_queue().await;

    let values = erika_reading("29800", "19640", None).values;
    let accepted = portal_domain::plausibility::check_reading(
        &stale,
        date!(2026 - 12 - 01),
        &values,
        date!(2026 - 12 - 01),
        &Default::default(),
    )
    .unwrap();
    let request = portal_domain::meter_reading::reading_request(
        &partner.partner_number,
        &stale,
        date!(2026 - 12 - 01),
        &accepted,
        None,
        CLOCK.0,
        portal_domain::requests::Channel::PortalAnonymous,
    );
    let result = stack.write_path(&stack.clients).commit(request).await;
    assert!(matches!(result, Err(portal_domain::requests::WriteError::Conflict)), "{result:?}");
    assert_eq!(stack.count(&t.meter_reading_submissions).await, 1);
    assert_eq!(stack.count(&t.activities).await, 2);
    assert!(stack.drain_queue().await.is_empty());
}

#[tokio::test]
async fn every_refusal_writes_nothing() {
    let stack = isolated_stack_with_demo().await;
    let service = stack.service(&stack.clients, CLOCK);

    let implausible = service.submit(erika_reading("100", "19650", Some("k"))).await.unwrap_err();
    assert!(matches!(implausible, MeterReadingError::Implausible(_)));

    let mut wrong_name = erika_reading("29810", "19650", None);
    wrong_name.identification.name = "Musterfrau".into();
    assert!(matches!(service.submit(wrong_name).await.unwrap_err(), MeterReadingError::NotIdentified));

    let mut other_meter = erika_reading("29810", "19650", None);
    other_meter.meter = MeterNumber::parse("1ESY1160012345").unwrap();
    assert!(matches!(service.submit(other_meter).await.unwrap_err(), MeterReadingError::MeterNotFound));

    let mut future = erika_reading("29810", "19650", None);
    future.reading_date = date!(2026 - 12 - 02);
    assert!(matches!(service.submit(future).await.unwrap_err(), MeterReadingError::Implausible(_)));

    assert_nothing_written(&stack).await;
}

#[tokio::test]
async fn identification_attempts_are_counted_in_dynamodb_and_limited() {
    let stack = isolated_stack_with_demo().await;
    let service = stack.service(&stack.clients, CLOCK);
    let who = |name: &str| Identification {
        customer: CustomerNumber::parse("1000002").unwrap(),
        name: name.into(),
        source: Default::default(),
        bill: None,
    };
    for _ in 0..10 {
        assert!(matches!(service.lookup(&who("Mueller")).await, Err(MeterReadingError::NotIdentified)));
    }
    assert!(matches!(
        service.lookup(&who("Müller-Lüdenscheidt")).await,
        Err(MeterReadingError::TooManyAttempts { .. })
    ));
    // Other customer numbers are not affected.
    let erika = Identification {
        customer: CustomerNumber::parse("1000001").unwrap(),
        name: "Mustermann".into(),
        source: Default::default(),
        bill: None,
    };
    assert!(service.lookup(&erika).await.is_ok());
    // A new service instance (another Lambda) sees the same counter.
    let other_instance = stack.service(&stack.clients, CLOCK);
    assert!(matches!(
        other_instance.lookup(&who("Müller-Lüdenscheidt")).await,
        Err(MeterReadingError::TooManyAttempts { .. })
    ));
}
