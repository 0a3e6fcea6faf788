//! Every self-service change end to end over HTTP on the served stack with the demo data:
//! record, activities and exactly one message valid against its event schema; the same
//! answer for a retry; the new state or the pending request in the GET endpoints; and for
//! every refusal its documented code with nothing written (read back from the tables).
//!
//! Each test works on objects no other test changes: bank details of 800000004 and
//! 800000003, the plan of 800000006, the billing address of 800000001, contract 5000005,
//! meter 1APA0098765432, the name and address of 1000004.

use integration_tests::{Ledger, call, demo_session, demo_session_signed_in, ledger, mails_to, message_of, send};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::entities::iso_date;
use reqwest::Method;
use serde_json::{Value, json};

fn today() -> time::Date {
    SystemClock.today()
}

fn receipt_valid(receipt: &Value) {
    let schema = portal_platform::schemas::compile("request-receipt.response.schema.json").unwrap();
    assert!(schema.is_valid(receipt), "{receipt}");
}

/// Asserts a refusal: status, code, and nothing written.
async fn refused(
    (status, problem): (u16, Value),
    expected: (u16, &str),
    before: &Ledger,
    table: &str,
    customer: &str,
    kind: &str,
) {
    assert_eq!((status, problem["code"].as_str().unwrap_or_default()), expected, "{problem}");
    assert_eq!(&ledger(table, customer, kind).await, before, "{expected:?} wrote nothing");
}

#[tokio::test]
async fn a_bank_details_change_is_confirmed_checked_recorded_and_notified() {
    const TABLE: &str = "TABLE_BANK_DETAILS_CHANGES";
    let path = "/v1/contract-accounts/800000004/bank-details";
    // The bakery's login proved its password half an hour ago: a change needs it again.
    let signed_in = time::OffsetDateTime::now_utc() - time::Duration::minutes(30);
    let bakery = demo_session_signed_in("L-0000003", &["1000003"], false, signed_in).await;
    let change = json!({
        "paymentMethod": "SEPA_DIRECT_DEBIT",
        "bankAccount": {"holder": "Bäckerei Schmidt GmbH", "iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX"},
        "payoutAccount": {"holder": "Bäckerei Schmidt GmbH", "iban": "DE64850503003120123456"},
        "sepaMandateAccepted": true, "sepaMandateTextVersion": "2026-01",
    });
    let with_password = |password: &str| {
        let mut body = change.clone();
        body["currentPassword"] = json!(password);
        body
    };
    let before = ledger(TABLE, "1000003", "BANK_DETAILS_CHANGE").await;
    let go = |body: Value, key: Option<&'static str>| {
        let token = bakery.clone();
        async move { send(Method::PUT, path, Some(&body), Some(&token), key).await }
    };
    refused(
        go(change.clone(), None).await,
        (403, "REAUTHENTICATION_REQUIRED"),
        &before,
        TABLE,
        "1000003",
        "BANK_DETAILS_CHANGE",
    )
    .await;
    refused(
        go(with_password("Falsch-2026"), None).await,
        (403, "CURRENT_PASSWORD_WRONG"),
        &before,
        TABLE,
        "1000003",
        "BANK_DETAILS_CHANGE",
    )
    .await;
    let mut bad_iban = with_password("Demo-Passwort-2026");
    bad_iban["bankAccount"]["iban"] = json!("DE89370400440532013001");
    let (status, problem) = go(bad_iban, None).await;
    assert_eq!(problem["errors"][0]["pointer"], "/bankAccount/iban");
    refused((status, problem), (422, "IBAN_INVALID"), &before, TABLE, "1000003", "BANK_DETAILS_CHANGE").await;
    // Debiting a new account without the customer's mandate is refused.
    let mut no_mandate = with_password("Demo-Passwort-2026");
    no_mandate.as_object_mut().unwrap().remove("sepaMandateAccepted");
    no_mandate.as_object_mut().unwrap().remove("sepaMandateTextVersion");
    let (status, problem) = go(no_mandate, None).await;
    assert_eq!(problem["errors"][0]["pointer"], "/sepaMandateAccepted");
    refused((status, problem), (422, "SEPA_MANDATE_REQUIRED"), &before, TABLE, "1000003", "BANK_DETAILS_CHANGE").await;
    let mut bad_bic = with_password("Demo-Passwort-2026");
    bad_bic["bankAccount"]["bic"] = json!("COBA1EFFXXX");
    refused(go(bad_bic, None).await, (422, "BIC_INVALID"), &before, TABLE, "1000003", "BANK_DETAILS_CHANGE").await;
    // SEPA's IBAN-only rule ends at the EEA: a Swiss account needs its BIC.
    let mut swiss = with_password("Demo-Passwort-2026");
    swiss["bankAccount"]["iban"] = json!("CH9300762011623852957");
    swiss["bankAccount"].as_object_mut().unwrap().remove("bic");
    refused(go(swiss, None).await, (422, "BIC_REQUIRED"), &before, TABLE, "1000003", "BANK_DETAILS_CHANGE").await;
    // Another customer's account is unknown, password or not.
    let (status, _) = send(
        Method::PUT,
        "/v1/contract-accounts/800000002/bank-details",
        Some(&with_password("Demo-Passwort-2026")),
        Some(&bakery),
        None,
    )
    .await;
    assert_eq!(status, 404);

    let mails_before = mails_to("info@baeckerei-schmidt.example").await.len();
    let (status, receipt) = go(with_password("Demo-Passwort-2026"), Some("bank-1")).await;
    assert_eq!(status, 202, "{receipt}");
    receipt_valid(&receipt);
    assert_eq!(
        go(with_password("Demo-Passwort-2026"), Some("bank-1")).await,
        (202, receipt.clone()),
        "a retry answers the same"
    );
    let after = ledger(TABLE, "1000003", "BANK_DETAILS_CHANGE").await;
    assert_eq!(
        after,
        Ledger { records: before.records + 1, activities: before.activities + 1, outbox: before.outbox + 1 }
    );

    let request_id = receipt["requestId"].as_str().unwrap();
    let (message, sent) = message_of(request_id, "events/bank-details-changed.schema.json").await;
    assert!(sent, "the message went to the queue");
    assert_eq!(message["payload"]["bankAccount"]["iban"], "DE89370400440532013000", "the CRM gets the full IBAN");
    assert_eq!(message["payload"]["payoutAccountChanged"], true);
    assert_eq!(message["payload"]["mandateRequest"]["textVersion"], "2026-01", "the new mandate for the CRM");

    let (_, _, shown) = call(Method::GET, path, None, Some(&bakery)).await;
    assert_eq!(shown["bankAccount"]["iban"], "******************3000");
    assert_eq!(shown["payoutAccount"]["iban"], "******************3456");
    assert_eq!(shown["pendingChange"], receipt["requestId"]);
    assert!(portal_platform::schemas::compile("bank-details.response.schema.json").unwrap().is_valid(&shown));

    let mails = mails_to("info@baeckerei-schmidt.example").await;
    assert_eq!(mails.len(), mails_before + 1, "one notification");
    let mail = mails.last().unwrap();
    assert!(mail.contains("800000004") && mail.contains("3000"), "{mail}");
    assert!(!mail.contains("DE89370400440532013000"), "the mail shows no full IBAN");
    assert!(!message.to_string().contains("Demo-Passwort-2026"), "no password in the message");

    // Neither the IBANs, the password nor the mail's text reached the functions' logs.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    if let Ok(path) = std::env::var("PORTAL_API_LOG") {
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(log.contains("bank-details"), "the log at {path} is not the API's");
        for canary in
            ["DE89370400440532013000", "DE64850503003120123456", "Demo-Passwort-2026", "Falsch-2026", "nicht selbst"]
        {
            assert!(!log.contains(canary), "{canary} is in the log");
        }
    }
}

#[tokio::test]
async fn a_mandate_is_revoked_once() {
    const TABLE: &str = "TABLE_BANK_DETAILS_CHANGES";
    let path = "/v1/contract-accounts/800000003/direct-debit-mandate";
    let jmueller = demo_session("L-0000001", &["1000002"], false).await;
    let before = ledger(TABLE, "1000002", "MANDATE_REVOCATION").await;
    let (status, receipt) = send(Method::DELETE, path, None, Some(&jmueller), Some("revoke-1")).await;
    assert_eq!(status, 202, "{receipt}");
    receipt_valid(&receipt);
    assert_eq!(send(Method::DELETE, path, None, Some(&jmueller), Some("revoke-1")).await, (202, receipt.clone()));
    let (message, _) =
        message_of(receipt["requestId"].as_str().unwrap(), "events/direct-debit-mandate-revoked.schema.json").await;
    assert_eq!(message["payload"]["mandateReference"], "EVI-800000003-01");
    let (_, _, shown) = call(Method::GET, "/v1/contract-accounts/800000003/bank-details", None, Some(&jmueller)).await;
    assert_eq!(
        (shown["paymentMethod"].as_str(), shown["mandate"]["status"].as_str()),
        (Some("BANK_TRANSFER"), Some("REVOKED"))
    );

    let once = ledger(TABLE, "1000002", "MANDATE_REVOCATION").await;
    assert_eq!(once.records, before.records + 1);
    refused(
        send(Method::DELETE, path, None, Some(&jmueller), None).await,
        (409, "NO_ACTIVE_MANDATE"),
        &once,
        TABLE,
        "1000002",
        "MANDATE_REVOCATION",
    )
    .await;
}

#[tokio::test]
async fn an_installment_change_is_refused_while_locked_and_recorded_at_customer_and_installation() {
    const TABLE: &str = "TABLE_INSTALLMENT_CHANGES";
    let jmueller = demo_session("L-0000001", &["1000002"], false).await;
    let petra = demo_session("L-TEST0005", &["1000005"], false).await;
    let due = portal_domain::reads::next_due_date(today() + time::Duration::days(1), 10);
    let change = |amount: &str, from: time::Date| json!({"amount": amount, "validFrom": iso_date::format(from)});

    let locked_before = ledger(TABLE, "1000002", "INSTALLMENT_CHANGE").await;
    let (status, problem) = send(
        Method::POST,
        "/v1/contract-accounts/800000003/installment-changes",
        Some(&change("120.00", portal_domain::reads::next_due_date(today() + time::Duration::days(1), 28))),
        Some(&jmueller),
        None,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("LAST_EXECUTION_IN_PROGRESS"), "{problem}");
    refused(
        (status, problem),
        (409, "INSTALLMENT_CHANGE_LOCKED"),
        &locked_before,
        TABLE,
        "1000002",
        "INSTALLMENT_CHANGE",
    )
    .await;

    let path = "/v1/contract-accounts/800000006/installment-changes";
    let go = |body: Value, key: Option<&'static str>| {
        let token = petra.clone();
        async move { send(Method::POST, path, Some(&body), Some(&token), key).await }
    };
    let before = ledger(TABLE, "1000005", "INSTALLMENT_CHANGE").await;
    refused(
        go(change("4.99", due), None).await,
        (422, "AMOUNT_OUT_OF_BOUNDS"),
        &before,
        TABLE,
        "1000005",
        "INSTALLMENT_CHANGE",
    )
    .await;
    refused(
        go(change("80.00", due + time::Duration::days(1)), None).await,
        (422, "VALID_FROM_NOT_DUE_DATE"),
        &before,
        TABLE,
        "1000005",
        "INSTALLMENT_CHANGE",
    )
    .await;
    refused(
        go(change("80.00", today() - time::Duration::days(40)), None).await,
        (422, "VALID_FROM_IN_PAST"),
        &before,
        TABLE,
        "1000005",
        "INSTALLMENT_CHANGE",
    )
    .await;
    refused(
        go(json!({"amount": "80.001", "validFrom": iso_date::format(due)}), None).await,
        (400, "VALIDATION_FAILED"),
        &before,
        TABLE,
        "1000005",
        "INSTALLMENT_CHANGE",
    )
    .await;
    let (status, _) = send(Method::POST, path, Some(&change("80.00", due)), Some(&jmueller), None).await;
    assert_eq!(status, 404, "another customer's plan");

    let (status, receipt) = go(change("80.00", due), Some("plan-1")).await;
    assert_eq!(status, 202, "{receipt}");
    receipt_valid(&receipt);
    assert_eq!(go(change("80.00", due), Some("plan-1")).await, (202, receipt.clone()));
    let after = ledger(TABLE, "1000005", "INSTALLMENT_CHANGE").await;
    assert_eq!(
        after,
        Ledger { records: before.records + 1, activities: before.activities + 2, outbox: before.outbox + 1 },
        "activities at customer and installation"
    );
    let request_id = receipt["requestId"].as_str().unwrap();
    let activities = integration_tests::stack_items("TABLE_ACTIVITIES").await;
    assert!(activities.iter().any(|a| integration_tests::s(a, "ownerKey") == "INST#A-7000006"
        && integration_tests::s(a, "requestId") == request_id));
    let (message, _) = message_of(request_id, "events/installment-change-requested.schema.json").await;
    assert_eq!(
        (message["payload"]["amount"].as_str(), message["payload"]["previousAmount"].as_str()),
        (Some("80.00"), Some("74.00"))
    );

    let (_, _, plan) = call(Method::GET, "/v1/contract-accounts/800000006/installment-plan", None, Some(&petra)).await;
    assert!(
        portal_platform::schemas::compile("installment-plan.response.schema.json").unwrap().is_valid(&plan),
        "{plan}"
    );
    assert_eq!(plan["pendingChange"]["requestId"], receipt["requestId"]);
    refused(
        go(change("90.00", due), None).await,
        (409, "INSTALLMENT_CHANGE_PENDING"),
        &after,
        TABLE,
        "1000005",
        "INSTALLMENT_CHANGE",
    )
    .await;
}

#[tokio::test]
async fn a_billing_address_and_bill_recipient_change_shows_at_once() {
    const TABLE: &str = "TABLE_BILLING_ADDRESS_CHANGES";
    let erika = demo_session("L-TEST0001", &["1000001"], false).await;
    let path = "/v1/contract-accounts/800000001/billing-address";
    let address =
        json!({"street": "Rheinufer", "houseNumber": "3a", "postalCode": "50668", "city": "Köln", "country": "DE"});
    let body = json!({"billingAddress": address, "billRecipient": {"name": "Max Mustermann", "address": address}});
    let before = ledger(TABLE, "1000001", "BILLING_ADDRESS_CHANGE").await;
    let mut bad = body.clone();
    bad["billingAddress"]["postalCode"] = json!("5066");
    refused(
        send(Method::PUT, path, Some(&bad), Some(&erika), None).await,
        (422, "POSTAL_CODE_INVALID"),
        &before,
        TABLE,
        "1000001",
        "BILLING_ADDRESS_CHANGE",
    )
    .await;
    let (status, _) =
        send(Method::PUT, "/v1/contract-accounts/800000004/billing-address", Some(&body), Some(&erika), None).await;
    assert_eq!(status, 404);

    let (status, receipt) = send(Method::PUT, path, Some(&body), Some(&erika), Some("bill-1")).await;
    assert_eq!(status, 202, "{receipt}");
    receipt_valid(&receipt);
    assert_eq!(send(Method::PUT, path, Some(&body), Some(&erika), Some("bill-1")).await, (202, receipt.clone()));
    let (message, _) =
        message_of(receipt["requestId"].as_str().unwrap(), "events/billing-address-changed.schema.json").await;
    assert_eq!(message["payload"]["billRecipient"]["name"], "Max Mustermann");
    let (_, _, account) = call(Method::GET, "/v1/contract-accounts/800000001/contracts", None, Some(&erika)).await;
    assert!(
        portal_platform::schemas::compile("account-contracts.response.schema.json").unwrap().is_valid(&account),
        "{account}"
    );
    assert_eq!(
        (account["billingAddress"]["street"].as_str(), account["pendingChange"].as_str()),
        (Some("Rheinufer"), receipt["requestId"].as_str())
    );
    refused(
        send(Method::PUT, path, Some(&body), Some(&erika), None).await,
        (422, "NOTHING_TO_CHANGE"),
        &ledger(TABLE, "1000001", "BILLING_ADDRESS_CHANGE").await,
        TABLE,
        "1000001",
        "BILLING_ADDRESS_CHANGE",
    )
    .await;
}

#[tokio::test]
async fn a_logged_in_reading_takes_the_same_rules_and_path_as_an_anonymous_one() {
    const TABLE: &str = "TABLE_METER_READING_SUBMISSIONS";
    let bakery = demo_session("L-0000003", &["1000003"], false).await;
    let path = "/v1/meters/1APA0098765432/readings";
    let reading = |ht: &str, nt: &str| json!({"readingDate": iso_date::format(today()), "values": [{"register": "HT", "value": ht}, {"register": "NT", "value": nt}]});
    let before = ledger(TABLE, "1000003", "METER_READING_SUBMISSION").await;
    refused(
        send(Method::POST, path, Some(&reading("1254300", "426900")), Some(&bakery), None).await,
        (422, "READING_BELOW_LAST_READING"),
        &before,
        TABLE,
        "1000003",
        "METER_READING_SUBMISSION",
    )
    .await;
    let (status, _) =
        send(Method::POST, "/v1/meters/1EMH0012345678/readings", Some(&reading("1", "1")), Some(&bakery), None).await;
    assert_eq!(status, 404, "Erika's meter");

    let (status, receipt) =
        send(Method::POST, path, Some(&reading("1254390", "426900")), Some(&bakery), Some("read-1")).await;
    assert_eq!(status, 202, "{receipt}");
    assert!(
        portal_platform::schemas::compile("meter-reading-receipt.response.schema.json").unwrap().is_valid(&receipt)
    );
    assert_eq!(
        send(Method::POST, path, Some(&reading("1254390", "426900")), Some(&bakery), Some("read-1")).await,
        (202, receipt.clone())
    );
    let after = ledger(TABLE, "1000003", "METER_READING_SUBMISSION").await;
    assert_eq!(after.records, before.records + 1);
    let (message, _) =
        message_of(receipt["requestId"].as_str().unwrap(), "events/meter-reading-submitted.schema.json").await;
    assert_eq!(message["channel"], "PORTAL");
    let (_, _, readings) = call(Method::GET, path, None, Some(&bakery)).await;
    assert_eq!(readings["history"][0]["source"], "CUSTOMER", "{readings}");
}

#[tokio::test]
async fn a_termination_follows_the_rules_of_its_reason_and_is_recorded_once() {
    const TABLE: &str = "TABLE_TERMINATIONS";
    let weber = demo_session("L-TEST0004", &["1000004"], false).await;
    let path = "/v1/contracts/5000005/terminations";
    let date = today() + time::Duration::days(45);
    let termination = json!({
        "reason": "SUPPLIER_CHANGE",
        "terminationDate": iso_date::format(date),
        "finalBillAddress": {"type": "OTHER", "name": "Karl Weber", "address": {"street": "Neue Straße", "houseNumber": "1", "postalCode": "80331", "city": "München", "country": "DE"}},
        "readings": [{"meterNumber": "1ITF0055501234", "readingDate": iso_date::format(today()), "values": [{"register": "SINGLE", "value": "80500"}]}],
        "finalBillPayment": {"type": "NEW", "paymentMethod": "BANK_TRANSFER", "bankAccount": {"holder": "Karl Weber", "iban": "DE89370400440532013000"}},
    });

    // Before the form: each reason's dates from the CRM's rules, and the meter to read.
    let options_path = "/v1/contracts/5000005/termination-options";
    let options_schema = portal_platform::schemas::compile("termination-options.response.schema.json").unwrap();
    let (status, _, options) = call(Method::GET, options_path, None, Some(&weber)).await;
    assert_eq!(status, 200, "{options}");
    assert!(options_schema.is_valid(&options), "{options}");
    assert_eq!(options["blocked"], Value::Null);
    let supplier = options["reasons"].as_array().unwrap().iter().find(|r| r["reason"] == "SUPPLIER_CHANGE").unwrap();
    assert_eq!(supplier["earliestDate"], iso_date::format(today() + time::Duration::days(30)), "{options}");
    assert_eq!(supplier["moveOutDateRequired"], false);
    let move_out = options["reasons"].as_array().unwrap().iter().find(|r| r["reason"] == "MOVE_OUT").unwrap();
    assert_eq!(move_out["moveOutDateRequired"], true);
    assert_eq!(options["finalReadings"][0]["meterNumber"], "1ITF0055501234");
    assert_eq!(options["finalReadings"][0]["registers"], json!(["SINGLE"]));
    let (status, _, _) = call(Method::GET, "/v1/contracts/5000004/termination-options", None, Some(&weber)).await;
    assert_eq!(status, 404, "the bakery's contract");
    let (status, _, _) = call(Method::GET, options_path, None, None).await;
    assert_eq!(status, 401);
    let before = ledger(TABLE, "1000004", "CONTRACT_TERMINATION").await;
    let variant = |f: &dyn Fn(&mut Value)| {
        let mut body = termination.clone();
        f(&mut body);
        body
    };
    let go = |body: Value, key: Option<&'static str>| {
        let token = weber.clone();
        async move { send(Method::POST, path, Some(&body), Some(&token), key).await }
    };
    let cases: Vec<(Value, (u16, &str))> = vec![
        (variant(&|b| b["reason"] = json!("BORED")), (422, "UNKNOWN_REASON")),
        (variant(&|b| b["reason"] = json!("MOVE_OUT")), (422, "MOVE_OUT_DATE_REQUIRED")),
        (
            variant(&|b| b["terminationDate"] = json!(iso_date::format(today() + time::Duration::days(29)))),
            (422, "TERMINATION_DATE_TOO_EARLY"),
        ),
        (variant(&|b| b["readings"] = json!([])), (422, "FINAL_READING_REQUIRED")),
        (variant(&|b| b["readings"][0]["values"][0]["value"] = json!("79000")), (422, "READING_BELOW_LAST_READING")),
        (variant(&|b| b["readings"][0]["meterNumber"] = json!("1EMH0012345678")), (422, "METER_NOT_OF_CONTRACT")),
        (
            variant(&|b| {
                let first = b["readings"][0].clone();
                b["readings"].as_array_mut().unwrap().push(first);
            }),
            (422, "FINAL_READING_TWICE"),
        ),
        (
            variant(&|b| b["finalBillPayment"]["bankAccount"]["iban"] = json!("DE00370400440532013000")),
            (422, "IBAN_INVALID"),
        ),
        (variant(&|b| b["finalBillAddress"]["address"]["postalCode"] = json!("8033")), (422, "POSTAL_CODE_INVALID")),
    ];
    for (body, expected) in cases {
        refused(go(body, None).await, expected, &before, TABLE, "1000004", "CONTRACT_TERMINATION").await;
    }
    let (status, _) =
        send(Method::POST, "/v1/contracts/5000004/terminations", Some(&termination), Some(&weber), None).await;
    assert_eq!(status, 404, "the bakery's contract");

    let (status, receipt) = go(termination.clone(), Some("end-1")).await;
    assert_eq!(status, 202, "{receipt}");
    receipt_valid(&receipt);
    assert_eq!(go(termination.clone(), Some("end-1")).await, (202, receipt.clone()));
    let after = ledger(TABLE, "1000004", "CONTRACT_TERMINATION").await;
    assert_eq!(
        after,
        Ledger { records: before.records + 1, activities: before.activities + 2, outbox: before.outbox + 1 }
    );
    let (message, _) =
        message_of(receipt["requestId"].as_str().unwrap(), "events/contract-termination-requested.schema.json").await;
    assert_eq!(message["payload"]["readings"][0]["values"][0]["consumption"], "1468");
    let objects: Vec<(&str, &str)> = message["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["object"]["kind"].as_str().unwrap(), a["object"]["id"].as_str().unwrap()))
        .collect();
    assert_eq!(objects, [("BUSINESS_PARTNER", "1000004"), ("INSTALLATION", "A-7000005")]);
    assert_eq!(message["activities"][0]["type"], "CONTRACT_TERMINATION_REQUESTED");
    let (_, _, contract) = call(Method::GET, "/v1/contracts/5000005", None, Some(&weber)).await;
    assert!(
        portal_platform::schemas::compile("contract.response.schema.json").unwrap().is_valid(&contract),
        "{contract}"
    );
    assert_eq!(contract["pendingTermination"]["terminationDate"], iso_date::format(date));
    let (_, _, options) = call(Method::GET, options_path, None, Some(&weber)).await;
    assert!(options_schema.is_valid(&options), "{options}");
    assert_eq!(options["blocked"]["code"], "TERMINATION_PENDING");
    assert_eq!(options["reasons"], json!([]));
    refused(
        go(termination.clone(), None).await,
        (409, "TERMINATION_PENDING"),
        &after,
        TABLE,
        "1000004",
        "CONTRACT_TERMINATION",
    )
    .await;
    assert!(mails_to("k.weber@example.org").await.iter().any(|m| m.contains("5000005")));
}

#[tokio::test]
async fn a_customer_data_change_waits_for_the_crm_and_is_recorded_once() {
    const TABLE: &str = "TABLE_CONTACT_DATA_CHANGES";
    const KIND: &str = "CUSTOMER_DATA_CHANGE";
    let weber = demo_session("L-TEST0044", &["1000004"], false).await;
    let path = "/v1/customers/1000004";
    let change = json!({
        "lastName": "Weber-Schmitz",
        "address": {"street": "Domplatz", "houseNumber": "7", "postalCode": "50667", "city": "Köln", "country": "DE"},
    });
    let before = ledger(TABLE, "1000004", KIND).await;
    let go = |body: Value, key: Option<&'static str>| {
        let token = weber.clone();
        async move { send(Method::PATCH, path, Some(&body), Some(&token), key).await }
    };
    let cases: Vec<(Value, (u16, &str))> = vec![
        (json!({"lastName": "Weber"}), (422, "NOTHING_TO_CHANGE")),
        (json!({"firstName": "K1aus"}), (422, "NAME_INVALID")),
        (json!({"salutation": "Firma"}), (400, "VALIDATION_FAILED")),
        (
            json!({"address": {"street": "Domplatz", "houseNumber": "7", "postalCode": "5066", "city": "Köln", "country": "DE"}}),
            (422, "POSTAL_CODE_INVALID"),
        ),
        (
            json!({"address": {"street": " ", "houseNumber": "7", "postalCode": "50667", "city": "Köln", "country": "DE"}}),
            (422, "ADDRESS_INCOMPLETE"),
        ),
        (json!({"lastName": "Weber\u{0}"}), (422, "CONTROL_CHARACTERS")),
    ];
    for (body, expected) in cases {
        refused(go(body, None).await, expected, &before, TABLE, "1000004", KIND).await;
    }
    let (status, _) = send(Method::PATCH, "/v1/customers/1000003", Some(&change), Some(&weber), None).await;
    assert_eq!(status, 404, "the bakery");

    let (status, receipt) = go(change.clone(), Some("data-1")).await;
    assert_eq!(status, 202, "{receipt}");
    receipt_valid(&receipt);
    assert_eq!(receipt["requestType"], KIND);
    assert_eq!(go(change.clone(), Some("data-1")).await, (202, receipt.clone()));
    let after = ledger(TABLE, "1000004", KIND).await;
    assert_eq!(
        after,
        Ledger { records: before.records + 1, activities: before.activities + 1, outbox: before.outbox + 1 }
    );
    let (message, _) =
        message_of(receipt["requestId"].as_str().unwrap(), "events/customer-data-change-requested.schema.json").await;
    assert_eq!(message["payload"]["changes"]["lastName"], "Weber-Schmitz");
    assert_eq!(message["payload"]["previous"]["lastName"], "Weber");
    assert_eq!(message["payload"]["previous"]["address"]["city"], "Hamburg");

    // The CRM's values stay until it confirms; the request shows as pending.
    let (_, _, customer) = call(Method::GET, path, None, Some(&weber)).await;
    assert!(
        portal_platform::schemas::compile("customer.response.schema.json").unwrap().is_valid(&customer),
        "{customer}"
    );
    assert_eq!(customer["lastName"], "Weber");
    assert_eq!(customer["pendingDataChange"]["requestId"], receipt["requestId"]);
    assert_eq!(customer["pendingDataChange"]["changes"]["address"]["street"], "Domplatz");
    refused(go(json!({"firstName": "Karl"}), None).await, (409, "DATA_CHANGE_PENDING"), &after, TABLE, "1000004", KIND)
        .await;

    // The CRM confirms: the request is processed, and the business partner comes again with
    // the new name and address. The view shows them, and nothing is pending any more.
    let (sync, _, _) = integration_tests::served_sync().await;
    let processed = json!({
        "messageType": "crm.request-status-changed", "messageId": "data-change-processed",
        "occurredAt": "2026-12-01T12:00:00Z", "requestId": receipt["requestId"], "requestType": KIND,
        "status": "PROCESSED", "reason": null,
    });
    assert_eq!(sync.apply(&processed.to_string()).await.unwrap(), portal_platform::sync::Outcome::Applied);
    let (_, _, customer) = call(Method::GET, path, None, Some(&weber)).await;
    assert_eq!(customer["pendingDataChange"], Value::Null, "{customer}");
    let confirmed = json!({
        "messageType": "crm.entity-changed", "messageId": "data-change-confirmed", "occurredAt": "2026-12-01T12:00:01Z",
        "entityType": "businessPartner", "version": 1_000_000,
        "entity": {
            "partnerNumber": "1000004", "partnerType": "PERSON", "salutation": "Herr", "title": "Dr.",
            "firstName": "Klaus", "lastName": "Weber-Schmitz", "address": change["address"],
            "phone": "+49 40 555 0101", "mobile": null, "fax": null, "email": "k.weber@example.org",
            "notificationConsent": false, "accountManager": null
        }
    });
    assert_eq!(sync.apply(&confirmed.to_string()).await.unwrap(), portal_platform::sync::Outcome::Applied);
    let (_, _, customer) = call(Method::GET, path, None, Some(&weber)).await;
    assert_eq!(
        (customer["lastName"].as_str(), customer["address"]["street"].as_str()),
        (Some("Weber-Schmitz"), Some("Domplatz"))
    );
    assert_eq!(customer["pendingDataChange"], Value::Null);
    // The next change is possible again.
    let (status, _) = go(json!({"firstName": "Karl"}), None).await;
    assert_eq!(status, 202);
}

/// Text that travels downstream is clean: a subject with CR/LF (a header injection into the
/// CRM's mail or activity), a street with NUL, a holder with ESC are refused with 422 and a
/// pointer, and nothing is written; a message's text keeps its line breaks.
#[tokio::test]
async fn control_characters_in_text_are_refused_with_a_pointer() {
    let bakery = demo_session("L-0000003", &["1000003"], false).await;
    let before = ledger("TABLE_MESSAGES", "1000003", "MESSAGE").await;
    let injected = json!({"reason": "BILLING", "subject": "Frage\r\nBcc: alle@example.org", "text": "Guten Tag"});
    let (status, problem) = send(Method::POST, "/v1/messages", Some(&injected), Some(&bakery), None).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("CONTROL_CHARACTERS")), "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/subject");
    assert_eq!(ledger("TABLE_MESSAGES", "1000003", "MESSAGE").await, before, "nothing written");
    let lines = json!({"reason": "BILLING", "subject": "Frage", "text": "Guten Tag,\r\nzweite Zeile.\n\nGruß"});
    assert_eq!(send(Method::POST, "/v1/messages", Some(&lines), Some(&bakery), None).await.0, 202);

    let street = "Haupt\u{0}straße";
    let address = json!({
        "billingAddress": {"street": street, "houseNumber": "1", "postalCode": "50667", "city": "Köln", "country": "DE"},
        "billRecipient": null,
    });
    let (status, problem) =
        send(Method::PUT, "/v1/contract-accounts/800000004/billing-address", Some(&address), Some(&bakery), None).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("CONTROL_CHARACTERS")), "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/billingAddress/street");
}

#[tokio::test]
async fn messages_land_at_the_customer_or_unassigned_routed_by_configuration() {
    let bakery = demo_session("L-0000003", &["1000003"], false).await;
    let jmueller = demo_session("L-0000001", &["1000002"], false).await;
    let message = |reason: &str| json!({"reason": reason, "subject": "Frage", "text": "Guten Tag, ..."});

    // The bakery has an account manager: every message goes there.
    let (status, receipt) =
        send(Method::POST, "/v1/messages", Some(&message("BILLING")), Some(&bakery), Some("msg-1")).await;
    assert_eq!(status, 202, "{receipt}");
    receipt_valid(&receipt);
    assert_eq!(
        send(Method::POST, "/v1/messages", Some(&message("BILLING")), Some(&bakery), Some("msg-1")).await,
        (202, receipt.clone())
    );
    let (event, _) = message_of(receipt["requestId"].as_str().unwrap(), "events/message-received.schema.json").await;
    assert_eq!(event["payload"]["routeTo"], json!({"kind": "ACCOUNT_MANAGER", "target": "vertrieb-gewerbe"}));
    assert_eq!(event["customerNumber"], "1000003");
    // The message carries its activity for the CRM to create as it is, delegated like the message.
    assert_eq!(
        event["activities"],
        json!([{"type": "CUSTOMER_MESSAGE", "subject": "Frage zur Rechnung: Frage", "text": "Guten Tag, ...",
                "object": {"kind": "BUSINESS_PARTNER", "id": "1000003"},
                "routeTo": {"kind": "ACCOUNT_MANAGER", "target": "vertrieb-gewerbe"}}])
    );

    let (_, receipt) = send(Method::POST, "/v1/messages", Some(&message("METER")), Some(&jmueller), None).await;
    let (event, _) = message_of(receipt["requestId"].as_str().unwrap(), "events/message-received.schema.json").await;
    assert_eq!(event["payload"]["routeTo"], json!({"kind": "DEPARTMENT", "target": "messwesen"}));
    let (status, _) = send(
        Method::POST,
        "/v1/messages",
        Some(&json!({"reason": "METER", "subject": "x", "text": "y", "customerNumber": "1000003"})),
        Some(&jmueller),
        None,
    )
    .await;
    assert_eq!(status, 404, "another customer's number");

    // Without a session: unassigned, with the sender; refused without one.
    let anonymous = |email: &str| {
        let mut m = message("OTHER");
        m["name"] = json!("Eva Neu");
        m["email"] = json!(email);
        m
    };
    let (status, problem) = send(Method::POST, "/v1/messages", Some(&message("OTHER")), None, None).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("SENDER_REQUIRED")));
    let (status, problem) = send(
        Method::POST,
        "/v1/messages",
        Some(&json!({"reason": "NOPE", "subject": "x", "text": "y", "name": "Eva", "email": "eva@example.org"})),
        None,
        None,
    )
    .await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("UNKNOWN_REASON")));
    let (status, receipt) =
        send(Method::POST, "/v1/messages", Some(&anonymous("eva.neu@example.org")), None, None).await;
    assert_eq!(status, 202, "{receipt}");
    let request_id = receipt["requestId"].as_str().unwrap();
    let (event, _) = message_of(request_id, "events/message-received.schema.json").await;
    assert_eq!((event["customerNumber"].clone(), event["channel"].as_str()), (Value::Null, Some("PORTAL_ANONYMOUS")));
    assert_eq!(
        event["payload"]["routeTo"],
        json!({"kind": "DEPARTMENT", "target": "kundenservice"}),
        "OTHER has no department"
    );
    let activities = integration_tests::stack_items("TABLE_ACTIVITIES").await;
    let filed: Vec<_> = activities.iter().filter(|a| integration_tests::s(a, "requestId") == request_id).collect();
    assert_eq!(filed.len(), 1);
    assert_eq!(integration_tests::s(filed[0], "ownerKey"), format!("UNASSIGNED#{request_id}"));
    assert!(!filed[0].contains_key("partnerNumber"));

    // Anonymous sending is limited per client: five an hour.
    let records_before = integration_tests::stack_items("TABLE_MESSAGES").await.len();
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            send(Method::POST, "/v1/messages", Some(&anonymous(&format!("eva{i}@example.org"))), None, None).await.0,
        );
    }
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 4, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429));
    assert_eq!(integration_tests::stack_items("TABLE_MESSAGES").await.len(), records_before + 4);
}

#[tokio::test]
async fn an_upload_is_recognised_by_content_stored_under_a_server_key_and_shown_in_the_inbox() {
    let _inbox = integration_tests::INBOX_CONFIGURATION.read().await;
    const TABLE: &str = "TABLE_DOCUMENT_UPLOADS";
    let bakery = demo_session("L-0000003", &["1000003"], false).await;
    let upload = |bytes: Vec<u8>, content_type: &'static str, key: Option<&'static str>| {
        let token = bakery.clone();
        async move {
            let mut req = reqwest::Client::new()
                .post(format!(
                    "{}/v1/me/documents?title=Z%C3%A4hlerfoto&fileName=..%2F..%2Fetc%2Fpasswd",
                    integration_tests::api_url()
                ))
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(bytes);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let png: Vec<u8> = [b"\x89PNG\r\n\x1a\n".as_slice(), &[7u8; 2048]].concat();
    let before = ledger(TABLE, "1000003", "DOCUMENT_UPLOAD").await;
    let exe: Vec<u8> = [b"MZ\x90\x00".as_slice(), &[0u8; 512]].concat();
    refused(
        upload(exe, "application/pdf", None).await,
        (415, "UNSUPPORTED_MEDIA_TYPE"),
        &before,
        TABLE,
        "1000003",
        "DOCUMENT_UPLOAD",
    )
    .await;
    refused(
        upload(png.clone(), "application/pdf", None).await,
        (415, "UNSUPPORTED_MEDIA_TYPE"),
        &before,
        TABLE,
        "1000003",
        "DOCUMENT_UPLOAD",
    )
    .await;
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(portal_domain::uploads::MAX_UPLOAD_BYTES + 1, b' ');
    let (status, problem) = upload(big, "application/pdf", None).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(ledger(TABLE, "1000003", "DOCUMENT_UPLOAD").await, before);

    let (status, receipt) = upload(png.clone(), "image/png", Some("up-1")).await;
    assert_eq!(status, 201, "{receipt}");
    receipt_valid(&receipt);
    assert_eq!(upload(png.clone(), "image/png", Some("up-1")).await, (201, receipt.clone()));
    assert_eq!(ledger(TABLE, "1000003", "DOCUMENT_UPLOAD").await.records, before.records + 1);
    let (message, _) = message_of(receipt["requestId"].as_str().unwrap(), "events/document-uploaded.schema.json").await;
    let document_id = receipt["documentId"].as_str().unwrap();
    assert_eq!(message["payload"]["bucketKey"], format!("documents/1000003/{document_id}"), "the server's key");
    assert_eq!(message["payload"]["size"], png.len());

    let (_, _, inbox) = call(Method::GET, "/v1/me/documents", None, Some(&bakery)).await;
    let shown =
        inbox["documents"].as_array().unwrap().iter().find(|d| d["documentId"] == document_id).cloned().unwrap();
    assert_eq!(
        (shown["category"].as_str(), shown["title"].as_str(), shown["mediaType"].as_str()),
        (Some("UPLOAD"), Some("Zählerfoto"), Some("image/png"))
    );
    let download = reqwest::Client::new()
        .get(format!("{}/v1/me/documents/{document_id}", integration_tests::api_url()))
        .bearer_auth(&bakery)
        .send()
        .await
        .unwrap();
    assert_eq!(download.bytes().await.unwrap().to_vec(), png);
}

/// A file above the inline limit (API Gateway and Lambda cap a body at about 4.4 MB): it
/// goes to S3 by an upload link, is completed by its `uploadId`, and comes back by a
/// presigned link (303), byte for byte; completing it again records nothing more; a link's
/// file that was never uploaded, another login's upload and a file over the limit are
/// refused.
#[tokio::test]
async fn a_large_file_goes_to_and_from_storage_by_presigned_link() {
    let _inbox = integration_tests::INBOX_CONFIGURATION.read().await;
    const TABLE: &str = "TABLE_DOCUMENT_UPLOADS";
    let bakery = demo_session("L-0000003", &["1000003"], false).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let link = |token: String| {
        let client = client.clone();
        async move {
            let res = client
                .post(format!("{}/v1/me/document-uploads", integration_tests::api_url()))
                .bearer_auth(token)
                .json(&json!({"mediaType": "application/pdf"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 201);
            let answer: Value = res.json().await.unwrap();
            let schema = portal_platform::schemas::compile("document-upload-link.response.schema.json").unwrap();
            assert!(schema.is_valid(&answer), "{answer}");
            answer
        }
    };
    let put = |answer: &Value, bytes: Vec<u8>| {
        let request = client
            .put(answer["uploadUrl"].as_str().unwrap())
            .header("content-type", answer["headers"]["Content-Type"].as_str().unwrap())
            .body(bytes);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let complete = |upload_id: &str, token: &str, key: Option<&str>| {
        let mut req = client
            .post(format!(
                "{}/v1/me/documents?uploadId={upload_id}&title=Gro%C3%9Fer%20Plan",
                integration_tests::api_url()
            ))
            .bearer_auth(token);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let before = ledger(TABLE, "1000003", "DOCUMENT_UPLOAD").await;

    // Nothing uploaded to the link yet; a malformed id.
    let answer = link(bakery.clone()).await;
    let upload_id = answer["uploadId"].as_str().unwrap().to_owned();
    let (status, problem) = complete(&upload_id, &bakery, None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("UPLOAD_NOT_FOUND")), "{problem}");
    assert_eq!(complete("../x", &bakery, None).await.0, 400);

    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8));
    assert_eq!(put(&answer, pdf.clone()).await, 200);
    // Another login cannot complete it: the staged file is the uploader's own.
    let other = demo_session("L-0000002", &["1000002"], false).await;
    assert_eq!(complete(&upload_id, &other, None).await.0, 404);
    let (status, receipt) = complete(&upload_id, &bakery, Some("big-1")).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(complete(&upload_id, &bakery, Some("big-1")).await, (201, receipt.clone()), "a retry answers the same");
    assert_eq!(complete(&upload_id, &bakery, None).await, (201, receipt.clone()), "one upload, one document");
    assert_eq!(ledger(TABLE, "1000003", "DOCUMENT_UPLOAD").await.records, before.records + 1);
    let (message, _) = message_of(receipt["requestId"].as_str().unwrap(), "events/document-uploaded.schema.json").await;
    assert_eq!(message["payload"]["size"], pdf.len());

    let document_id = receipt["documentId"].as_str().unwrap();
    let download = client
        .get(format!("{}/v1/me/documents/{document_id}", integration_tests::api_url()))
        .bearer_auth(&bakery)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status().as_u16(), 303);
    let location = download.headers()["location"].to_str().unwrap().to_owned();
    let file = reqwest::get(&location).await.unwrap();
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(file.bytes().await.unwrap().to_vec(), pdf, "the same bytes");

    // Over the limit: refused at completion, nothing recorded.
    let answer = link(bakery.clone()).await;
    let mut huge = b"%PDF-1.7\n".to_vec();
    huge.resize(portal_domain::uploads::MAX_UPLOAD_BYTES + 1, b' ');
    assert_eq!(put(&answer, huge).await, 200);
    let (status, problem) = complete(answer["uploadId"].as_str().unwrap(), &bakery, None).await;
    assert_eq!((status, problem["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{problem}");
    assert_eq!(ledger(TABLE, "1000003", "DOCUMENT_UPLOAD").await.records, before.records + 1);
}

#[tokio::test]
async fn simultaneous_changes_of_one_account_have_a_defined_outcome() {
    // Two installment changes at once: one wins, the other is refused with 409.
    let weber = demo_session("L-TEST0004", &["1000004"], false).await;
    let due = portal_domain::reads::next_due_date(today() + time::Duration::days(1), 1);
    let path = "/v1/contract-accounts/800000005/installment-changes";
    let body = |amount: &str| json!({"amount": amount, "validFrom": iso_date::format(due)});
    let (first, second) = (body("65.00"), body("70.00"));
    let (a, b) = futures::join!(
        send(Method::POST, path, Some(&first), Some(&weber), None),
        send(Method::POST, path, Some(&second), Some(&weber), None)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409], "{a:?} {b:?}");
    let winner = if a.0 == 202 { &a.1 } else { &b.1 };
    let loser = if a.0 == 202 { &b.1 } else { &a.1 };
    assert!(["CONCURRENT_UPDATE", "INSTALLMENT_CHANGE_PENDING"].contains(&loser["code"].as_str().unwrap()), "{loser}");
    let (_, _, plan) = call(Method::GET, "/v1/contract-accounts/800000005/installment-plan", None, Some(&weber)).await;
    assert_eq!(plan["pendingChange"]["requestId"], winner["requestId"]);
    assert_eq!(
        (plan["changePossible"].as_bool(), plan["changeRefusedReason"].as_str()),
        (Some(false), Some("CHANGE_PENDING"))
    );
    assert_eq!(ledger("TABLE_INSTALLMENT_CHANGES", "1000004", "INSTALLMENT_CHANGE").await.records, 1);

    // Two bank-details changes at once: either both are recorded and sent in order (the
    // second decided on what the first wrote), or the second, decided on what the first
    // replaced, is refused with 409. The mirror shows one change whole, marked with that
    // request — never a mix, never a lost update.
    let path = "/v1/contract-accounts/800000005/bank-details";
    let change =
        |iban: &str| json!({"paymentMethod": "BANK_TRANSFER", "payoutAccount": {"holder": "Karl Weber", "iban": iban}});
    let (first, second) = (change("DE89370400440532013000"), change("DE64850503003120123456"));
    let (a, b) = futures::join!(
        send(Method::PUT, path, Some(&first), Some(&weber), None),
        send(Method::PUT, path, Some(&second), Some(&weber), None)
    );
    let (_, _, shown) = call(Method::GET, path, None, Some(&weber)).await;
    let shown_by = if shown["payoutAccount"]["iban"].as_str().unwrap().ends_with("3000") { &a } else { &b };
    assert_eq!((shown_by.0, &shown["pendingChange"]), (202, &shown_by.1["requestId"]), "{shown}");
    let ledger = ledger("TABLE_BANK_DETAILS_CHANGES", "1000004", "BANK_DETAILS_CHANGE").await;
    match (a.0, b.0) {
        (202, 202) => assert_eq!((ledger.records, ledger.outbox), (2, 2)),
        (202, 409) | (409, 202) => {
            let loser = if a.0 == 409 { &a.1 } else { &b.1 };
            assert_eq!(loser["code"], "CONCURRENT_UPDATE");
            assert_eq!((ledger.records, ledger.outbox), (1, 1));
        }
        other => panic!("{other:?}: {a:?} {b:?}"),
    }
}

/// The CRM's outcome of a request is told: a rejected change no longer shows its values (the
/// CRM's come back at once) and the customer, who consented to notifications, gets a mail
/// naming the request and the reason; a processed one keeps its values and is told too.
#[tokio::test]
async fn the_crms_outcome_is_shown_at_once_and_told_to_a_customer_who_consented() {
    use portal_platform::sync::Outcome;
    let erika = demo_session("L-TEST0001", &["1000001"], false).await;
    let path = "/v1/customers/1000001";
    let (_, _, before) = call(Method::GET, path, None, Some(&erika)).await;
    let mobile = "+49 171 5550101";
    let (status, receipt) =
        send(Method::PATCH, "/v1/customers/1000001/contact", Some(&json!({"mobile": mobile})), Some(&erika), None)
            .await;
    assert_eq!(status, 202, "{receipt}");
    let (_, _, shown) = call(Method::GET, path, None, Some(&erika)).await;
    assert_eq!((shown["mobile"].as_str(), &shown["pendingContactChange"]), (Some(mobile), &receipt["requestId"]));

    let (sync, _, _) = integration_tests::served_sync().await;
    let status_message = |id: &Value, status: &str, reason: Value| {
        json!({
            "messageType": "crm.request-status-changed", "messageId": format!("outcome-{status}"),
            "occurredAt": "2026-12-01T12:00:00Z", "requestId": id, "requestType": "CONTACT_DATA_CHANGE",
            "status": status, "reason": reason,
        })
        .to_string()
    };
    let rejected = status_message(&receipt["requestId"], "REJECTED", json!("Die Nummer ist nicht erreichbar."));
    assert_eq!(sync.apply(&rejected).await.unwrap(), Outcome::Applied);
    let (_, _, shown) = call(Method::GET, path, None, Some(&erika)).await;
    assert_eq!((&shown["mobile"], &shown["pendingContactChange"]), (&before["mobile"], &Value::Null), "{shown}");
    let request_id = receipt["requestId"].as_str().unwrap();
    let told = mails_to("erika.mustermann@example.org").await;
    let mail = told.iter().find(|m| m.contains(request_id)).expect("the outcome mail");
    assert!(mail.contains("konnte nicht ausgef") && mail.contains("Die Nummer ist nicht erreichbar."), "{mail}");
    // A repeat of the outcome changes nothing and tells nobody again.
    assert_eq!(sync.apply(&rejected).await.unwrap(), Outcome::Ignored);
    let again = mails_to("erika.mustermann@example.org").await;
    assert_eq!(again.iter().filter(|m| m.contains(request_id)).count(), 1);

    // Processed: the values stay, and the customer is told.
    let (_, receipt) =
        send(Method::PATCH, "/v1/customers/1000001/contact", Some(&json!({"mobile": mobile})), Some(&erika), None)
            .await;
    let processed = status_message(&receipt["requestId"], "PROCESSED", Value::Null);
    assert_eq!(sync.apply(&processed).await.unwrap(), Outcome::Applied);
    let (_, _, shown) = call(Method::GET, path, None, Some(&erika)).await;
    assert_eq!((shown["mobile"].as_str(), &shown["pendingContactChange"]), (Some(mobile), &Value::Null));
    let request_id = receipt["requestId"].as_str().unwrap();
    let told = mails_to("erika.mustermann@example.org").await;
    assert!(told.iter().any(|m| m.contains(request_id) && m.contains("ist bearbeitet")), "{told:?}");
}
