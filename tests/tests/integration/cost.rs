//! Cost per request: the AWS calls each endpoint's logic makes, counted by an SDK
//! interceptor on the emulator (see docs/cost.md). Calls listed together run concurrently.

use integration_tests::{Stack, isolated_stack_with_demo, sdk_config};
use portal_domain::clock::FixedClock;
use portal_domain::identity::sessions::{Access, Authenticator, Caller, SessionPolicy, open_session};
use portal_domain::identity::{LoginStore, SessionStore};
use portal_domain::ids::{AccountNumber, ContractNumber, CustomerNumber, MeterNumber};
use portal_domain::reads::{Catalog, ScopedReads};
use portal_platform::aws::{CallCounter, Clients};
use portal_platform::identity::DynamoSessions;
use portal_platform::reads::DynamoReads;
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

async fn counted(stack: &Stack) -> (Clients, CallCounter) {
    let counter = CallCounter::default();
    let clients =
        Clients::with_counter(&sdk_config(integration_tests::EMULATOR).await, Some(&stack.account), Some(&counter));
    (clients, counter)
}

fn sorted(mut calls: Vec<String>) -> Vec<String> {
    calls.sort();
    calls
}

#[tokio::test]
async fn every_read_is_the_session_check_plus_one_round() {
    let stack = isolated_stack_with_demo().await;
    let (clients, counter) = counted(&stack).await;
    let tables = stack.config.tables.clone();
    let sessions = DynamoSessions::new(clients.dynamo.clone(), &tables);
    let login =
        stack.live().logins().get(&portal_domain::ids::LoginId::parse("L-0000001").unwrap()).await.unwrap().unwrap();
    let (token, record) = open_session(&login, NOW, &SessionPolicy::default());
    sessions.create(&record).await.unwrap();
    counter.take();

    let logins = portal_platform::identity::DynamoLogins::new(clients.dynamo.clone(), tables.clone());
    let auth = Authenticator { sessions, logins, clock: FixedClock(NOW), policy: SessionPolicy::default() };
    let caller: Caller = auth.authenticate(Some(&token), Access::Regular).await.unwrap();
    assert_eq!(counter.take(), ["GetItem", "GetItem"], "the session check: session and login in one round");

    let reads =
        DynamoReads::new(clients.dynamo.clone(), tables, clients.s3.clone(), stack.config.documents_bucket.clone());
    let customer = CustomerNumber::parse("1000002").unwrap();
    let account = AccountNumber::parse("800000003").unwrap();

    reads.partner(&caller, &customer).await.unwrap().unwrap();
    assert_eq!(counter.take(), ["GetItem"]);
    reads.account_contracts(&caller, &account).await.unwrap().unwrap();
    assert_eq!(sorted(counter.take()), ["GetItem", "Query"]);
    reads.contract(&caller, &ContractNumber::parse("5000003").unwrap()).await.unwrap().unwrap();
    assert_eq!(counter.take(), ["GetItem"]);
    reads.bank_details(&caller, &account).await.unwrap().unwrap();
    assert_eq!(counter.take(), ["GetItem"]);
    reads.installment_plan(&caller, &account).await.unwrap().unwrap();
    assert_eq!(counter.take(), ["GetItem"]);
    reads.meter_readings(&caller, &MeterNumber::parse("7ELS8135012345").unwrap()).await.unwrap().unwrap();
    assert_eq!(sorted(counter.take()), ["GetItem", "Query"]);
    let directory = portal_platform::dynamo::DynamoDirectory::new(clients.dynamo.clone(), stack.config.tables.clone());
    portal_domain::dashboard::dashboard(&directory, &caller, time::macros::date!(2026 - 12 - 01)).await.unwrap();
    assert_eq!(sorted(counter.take()), ["GetItem", "Query", "Query", "Query"]);

    // Another customer's object costs the same and finds nothing.
    let other = Caller { partner_numbers: vec![CustomerNumber::parse("1000003").unwrap()], ..caller.clone() };
    assert!(reads.bank_details(&other, &account).await.unwrap().is_none());
    assert_eq!(counter.take(), ["GetItem"]);
    // A login with two customer numbers: one call per customer number, concurrently.
    let both = Caller { partner_numbers: vec![CustomerNumber::parse("1000003").unwrap(), customer.clone()], ..caller };
    assert!(reads.bank_details(&both, &account).await.unwrap().is_some());
    assert_eq!(counter.take(), ["GetItem", "GetItem"]);

    reads.products().await.unwrap();
    assert_eq!(counter.take(), ["Scan"]);
    reads.code_list("messageReasons").await.unwrap();
    assert_eq!(counter.take(), ["Query"]);
}

#[tokio::test]
async fn a_write_is_one_round_of_checks_one_transaction_and_one_message() {
    let stack = isolated_stack_with_demo().await;
    let (clients, counter) = counted(&stack).await;
    let service = stack.service(&clients, FixedClock(NOW));
    let reading = portal_domain::meter_reading::AnonymousReading {
        identification: portal_domain::identification::Identification {
            customer: CustomerNumber::parse("1000001").unwrap(),
            name: "Mustermann".into(),
            source: Default::default(),
            bill: None,
        },
        meter: MeterNumber::parse("1EMH0012345678").unwrap(),
        reading_date: time::macros::date!(2026 - 12 - 01),
        values: [("HT", 29810), ("NT", 19650)]
            .iter()
            .map(|(c, v)| portal_domain::plausibility::SubmittedValue {
                register: portal_domain::ids::RegisterCode::parse(c).unwrap(),
                value: rust_decimal::Decimal::from(*v),
            })
            .collect(),
        confirmed_implausible: false,
        idempotency: Some((portal_domain::ids::IdempotencyKey::parse("cost-1").unwrap(), "fp".into())),
    };
    let answer = service.submit(reading).await.unwrap();
    let (calls, bodies): (Vec<String>, Vec<String>) = counter.take_with_bodies().into_iter().unzip();
    // One round: partner, meter and earlier answer read; a slot of the customer number's, the
    // source address's and the deployment's budget taken.
    let checks = ["GetItem", "GetItem", "GetItem", "UpdateItem", "UpdateItem", "UpdateItem"];
    assert_eq!(sorted(calls[..6].to_vec()), checks, "checks: {calls:?}");
    // The identification succeeded: its slots go back while the reading is written.
    let write = ["TransactWriteItems", "UpdateItem", "UpdateItem", "UpdateItem"];
    assert_eq!(sorted(calls[6..10].to_vec()), write, "{calls:?}");
    assert_eq!(calls[10..], ["Query", "SendMessage", "UpdateItem"]);
    // The transaction carries the request id as its token: DynamoDB applies a retried
    // attempt whose answer was lost once (the emulator ignores the token).
    let at = calls.iter().position(|c| c == "TransactWriteItems").unwrap();
    let transaction: serde_json::Value = serde_json::from_str(&bodies[at]).unwrap();
    assert_eq!(transaction["ClientRequestToken"], answer["requestId"], "{transaction}");
}

/// A password-reset request makes the same AWS calls whether or not a login has the name:
/// the name's, the source address's and the deployment's budget, then one message to the
/// worker's queue. Neither the answer nor its time tells who has a login. (Before, the
/// request path looked the login up and, for a known one, stored a code and sent a mail.)
#[tokio::test]
async fn a_reset_request_makes_the_same_calls_for_known_and_unknown_logins() {
    let stack = isolated_stack_with_demo().await;
    let (clients, counter) = counted(&stack).await;
    let live = portal_platform::live::Live { config: stack.config.clone(), clients };
    let desk = live.reset_desk();
    let from = portal_domain::budgets::SourceAddress::of("203.0.113.9");
    let mut sequences = Vec::new();
    for name in ["jmueller", "j.mueller@example.org", "niemand", "niemand@example.org"] {
        desk.request(name, &from).await.unwrap();
        sequences.push(sorted(counter.take()));
    }
    assert_eq!(sequences[0], ["SendMessage", "UpdateItem", "UpdateItem", "UpdateItem"]);
    assert!(sequences.iter().all(|s| s == &sequences[0]), "{sequences:?}");
}
