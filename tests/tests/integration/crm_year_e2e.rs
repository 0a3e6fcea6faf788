//! A year in the CRM, end to end: every kind of change EVI makes goes through the served
//! stack's inbound queue (sent to SQS, taken by the sync as the local poller does), and after
//! each step the test asserts over HTTP what the customer sees, and the mails in the
//! emulator's SES store. The customer, Jana Jahr (1000090), comes into being in the CRM
//! during the test, so the other tests' demo data stays as it is.
//!
//! Steps: a new customer with a login waiting for approval; the approval (initial-password
//! mail); a reading processed (mail); the CRM replaces and then deletes a reading; a meter
//! exchange; a code list and a product added, changed and removed; the inbox configuration
//! set and removed; a document deleted and its late older update ignored; a contact change
//! rejected (the CRM's values back at once, mail with the reason); the contract's end.

use integration_tests::{INBOX_CONFIGURATION, call, mails_to, send, through_inbound_queue};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::entities::iso_date;
use reqwest::Method;
use serde_json::{Value, json};

const CUSTOMER: &str = "1000090";
const EMAIL: &str = "jana.jahr@example.org";
const OLD_METER: &str = "1JHR0000000001";
const NEW_METER: &str = "1JHR0000000002";

/// EVI's side: each change with a version above every earlier one.
struct Crm {
    version: u64,
    sent: usize,
}

impl Crm {
    fn next(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    async fn deliver(&mut self, message: Value) -> portal_platform::sync::SyncReport {
        self.sent += 1;
        let report = through_inbound_queue(std::slice::from_ref(&message)).await;
        assert_eq!((report.dead_lettered, report.failed), (0, 0), "{message}: {report:?}");
        report
    }

    async fn change_at(&mut self, version: u64, entity_type: &str, entity: Value) -> portal_platform::sync::SyncReport {
        let message = json!({
            "messageType": "crm.entity-changed", "messageId": format!("year-{entity_type}-{version}"),
            "occurredAt": "2026-12-01T10:00:00Z", "entityType": entity_type, "version": version,
            "partnerNumber": CUSTOMER, "entity": entity,
        });
        self.deliver(message).await
    }

    async fn change(&mut self, entity_type: &str, entity: Value) {
        let version = self.next();
        let report = self.change_at(version, entity_type, entity).await;
        assert!(report.applied >= 1, "{entity_type} v{version}: {report:?}");
    }

    async fn delete(&mut self, entity_type: &str, key: &str) {
        let version = self.next();
        let message = json!({
            "messageType": "crm.entity-deleted", "messageId": format!("year-del-{entity_type}-{version}"),
            "occurredAt": "2026-12-01T10:00:00Z", "entityType": entity_type, "version": version,
            "partnerNumber": CUSTOMER, "key": key,
        });
        let report = self.deliver(message).await;
        assert!(report.applied >= 1, "delete {entity_type} {key}: {report:?}");
    }

    async fn status(&mut self, request_id: &Value, request_type: &str, status: &str, reason: Value) {
        let message = json!({
            "messageType": "crm.request-status-changed", "messageId": format!("year-status-{}", self.sent),
            "occurredAt": "2026-12-01T10:00:00Z", "requestId": request_id, "requestType": request_type,
            "status": status, "reason": reason,
        });
        let report = self.deliver(message).await;
        assert!(report.applied >= 1, "{request_type} {status}: {report:?}");
    }
}

fn address() -> Value {
    json!({"street": "Jahnstraße", "houseNumber": "12", "postalCode": "50667", "city": "Köln", "country": "DE"})
}

fn contract(end: Value) -> Value {
    json!({
        "contractNumber": "5000090", "accountNumber": "800000090", "productId": "STROM-BASIS",
        "startDate": "2026-01-01", "endDate": end, "installationId": "A-7000090",
        "consumptionPoint": {"maloId": "55678901239", "address": address()}
    })
}

fn meter(number: &str, removed: Value) -> Value {
    json!({
        "meterNumber": number, "installationId": "A-7000090", "commodity": "ELECTRICITY", "unit": "kWh",
        "registers": [{"code": "SINGLE", "obis": "1-0:1.8.0", "digits": 6, "decimals": 0, "expectedAnnualConsumption": "3650"}],
        "removedOn": removed,
    })
}

fn reading(meter: &str, date: &str, value: &str) -> Value {
    json!({"meterNumber": meter, "register": "SINGLE", "date": date, "value": value, "source": "NETWORK_OPERATOR"})
}

fn login(status: &str) -> Value {
    json!({
        "loginId": "L-0000090", "username": "jana.jahr", "email": EMAIL, "status": status,
        "partnerNumbers": [CUSTOMER], "mustChangePassword": true,
        "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "createdAt": "2026-01-02T09:00:00Z"
    })
}

fn document(id: &str, category: &str, date: &str, dispatch: &str) -> Value {
    json!({
        "documentId": id, "partnerNumber": CUSTOMER, "accountNumber": "800000090", "category": category,
        "date": date, "title": format!("{category} {date}"), "fileName": format!("{id}.pdf"),
        "mediaType": "application/pdf", "attributes": {"dispatch": dispatch}
    })
}

/// The meters the dashboard shows under the customer's contract.
async fn dashboard_meters(token: &str) -> Vec<String> {
    let (status, _, dashboard) = call(Method::GET, "/v1/me/dashboard", None, Some(token)).await;
    assert_eq!(status, 200, "{dashboard}");
    dashboard["partners"][0]["contractAccounts"][0]["contracts"][0]["meters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["meterNumber"].as_str().unwrap().to_owned())
        .collect()
}

/// The history of a meter (date and value, newest first) and its last reading's value.
async fn history(token: &str, meter: &str) -> (Vec<(String, String)>, Value) {
    let (status, _, view) = call(Method::GET, &format!("/v1/meters/{meter}/readings"), None, Some(token)).await;
    assert_eq!(status, 200, "{view}");
    let history = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["date"].as_str().unwrap().to_owned(), r["value"].as_str().unwrap().to_owned()))
        .collect();
    (history, view["registers"][0]["lastReading"]["value"].clone())
}

async fn submit(token: &str, meter: &str, date: &str, value: &str) -> (u16, Value) {
    let body = json!({"readingDate": date, "values": [{"register": "SINGLE", "value": value}]});
    send(Method::POST, &format!("/v1/meters/{meter}/readings"), Some(&body), Some(token), None).await
}

async fn inbox(token: &str) -> Vec<String> {
    let (status, _, inbox) = call(Method::GET, "/v1/me/documents", None, Some(token)).await;
    assert_eq!(status, 200, "{inbox}");
    inbox["documents"].as_array().unwrap().iter().map(|d| d["documentId"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_year_in_the_crm_reaches_the_customer_as_it_happens() {
    let today = SystemClock.today();
    let day = |back: i64| iso_date::format(today - time::Duration::days(back));
    let mut crm = Crm { version: 1_000, sent: 0 };

    // 1. A new customer: partner, account, contract, installation, meter, readings, and a
    // login that waits for the CRM's approval (no password mail yet).
    let partner = json!({
        "partnerNumber": CUSTOMER, "partnerType": "PERSON", "salutation": "Frau", "title": null,
        "firstName": "Jana", "lastName": "Jahr", "address": address(), "phone": null,
        "mobile": "+49 170 1111111", "fax": null, "email": EMAIL, "notificationConsent": true, "accountManager": null
    });
    crm.change("businessPartner", partner).await;
    crm.change(
        "contractAccount",
        json!({
            "accountNumber": "800000090", "partnerNumber": CUSTOMER, "billingAddress": address(), "billRecipient": null,
            "paymentMethod": "BANK_TRANSFER", "bankAccount": null, "payoutAccount": null, "mandate": null
        }),
    )
    .await;
    crm.change("contract", contract(Value::Null)).await;
    crm.change(
        "installation",
        json!({"installationId": "A-7000090", "contractNumber": "5000090", "meterNumbers": [OLD_METER]}),
    )
    .await;
    crm.change("meter", meter(OLD_METER, Value::Null)).await;
    for (back, value) in [(60, "1000"), (30, "1300")] {
        crm.change("meterReading", reading(OLD_METER, &day(back), value)).await;
    }
    crm.change("portalLogin", login("AUSSTEHEND")).await;
    assert!(mails_to(EMAIL).await.is_empty(), "no password while the login waits");

    // 2. The CRM approves the login: the initial password comes now; she signs in and sets
    // her own.
    crm.change("portalLogin", login("AKTIV")).await;
    let mails = mails_to(EMAIL).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let initial = integration_tests::mail_field(&mails[0], "Initialpasswort:").expect("the initial password");
    let (status, _, first) =
        call(Method::POST, "/v1/sessions", Some(&json!({"username": "jana.jahr", "password": initial})), None).await;
    assert_eq!((status, first["mustChangePassword"].as_bool()), (201, Some(true)), "{first}");
    let change = json!({"currentPassword": initial, "newPassword": "Ein ganzes Jahr im Portal 2026"});
    let (status, _, changed) = call(Method::PUT, "/v1/me/password", Some(&change), first["token"].as_str()).await;
    assert_eq!(status, 200, "{changed}");
    let token = changed["token"].as_str().unwrap().to_owned();
    let token = token.as_str();
    assert_eq!(dashboard_meters(token).await, [OLD_METER]);
    assert_eq!(history(token, OLD_METER).await.1, "1300");

    // 3. She reports a reading; the CRM processes it and she is told.
    let (status, receipt) = submit(token, OLD_METER, &day(20), "1400").await;
    assert_eq!(status, 202, "{receipt}");
    crm.status(&receipt["requestId"], "METER_READING_SUBMISSION", "PROCESSED", Value::Null).await;
    let mails = mails_to(EMAIL).await;
    let request_id = receipt["requestId"].as_str().unwrap();
    assert!(mails.iter().any(|m| m.contains(request_id) && m.contains("ist bearbeitet")), "{mails:?}");
    let (_, _, requests) = call(Method::GET, "/v1/me/requests?limit=100", None, Some(token)).await;
    let shown = requests["requests"].as_array().unwrap().iter().find(|r| r["requestId"] == request_id).cloned();
    assert_eq!(shown.map(|r| r["status"].clone()), Some(json!("PROCESSED")), "{requests}");

    // 4. The CRM replaces a reading (a correction of the one 30 days back), then deletes the
    // latest: the history and the last reading follow each time.
    crm.change("meterReading", reading(OLD_METER, &day(30), "1290")).await;
    let (readings, _) = history(token, OLD_METER).await;
    assert!(readings.contains(&(day(30), "1290".to_owned())) && !readings.contains(&(day(30), "1300".to_owned())));
    crm.delete("meterReading", &format!("{OLD_METER}#SINGLE#{}", day(20))).await;
    let (readings, last) = history(token, OLD_METER).await;
    assert!(!readings.iter().any(|(date, _)| date == &day(20)), "{readings:?}");
    assert_eq!(last, "1290", "the last reading falls back to the latest one left");

    // 5. A meter exchange: the old meter is removed 5 days back, the new one starts there.
    crm.change("meter", meter(OLD_METER, json!(day(5)))).await;
    crm.change("meter", meter(NEW_METER, Value::Null)).await;
    crm.change(
        "installation",
        json!({"installationId": "A-7000090", "contractNumber": "5000090", "meterNumbers": [NEW_METER]}),
    )
    .await;
    crm.change("meterReading", reading(NEW_METER, &day(5), "0")).await;
    assert_eq!(dashboard_meters(token).await, [NEW_METER], "the old meter leaves, the new one appears");
    let (status, problem) = submit(token, OLD_METER, &day(1), "1500").await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("READING_AFTER_METER_REMOVAL")), "{problem}");
    let (status, receipt) = submit(token, NEW_METER, &day(3), "40").await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(history(token, NEW_METER).await.1, "40");

    // 6. Code lists and products: added, changed, removed.
    let reason =
        |label: &str| json!({"listName": "messageReasons", "key": "YEAR_SOLAR", "label": label, "routeTo": "technik"});
    let reasons = || async {
        let (_, _, list) = call(Method::GET, "/v1/code-lists/messageReasons", None, None).await;
        list["values"].as_array().unwrap().iter().find(|v| v["key"] == "YEAR_SOLAR").map(|v| v["label"].clone())
    };
    crm.change("codeListEntry", reason("Solaranlage")).await;
    assert_eq!(reasons().await, Some(json!("Solaranlage")));
    crm.change("codeListEntry", reason("Photovoltaik")).await;
    assert_eq!(reasons().await, Some(json!("Photovoltaik")));
    crm.delete("codeListEntry", "messageReasons#YEAR_SOLAR").await;
    assert_eq!(reasons().await, None);
    let product = |price: &str| {
        json!({
            "productId": "YEAR-STROM", "name": "Strom Jahrestest", "commodity": "ELECTRICITY", "customerType": "PRIVATE",
            "basePricePerYear": "120.00", "unitPrice": price, "unit": "kWh", "priceGuaranteeUntil": null
        })
    };
    let products = || async {
        let (_, _, list) = call(Method::GET, "/v1/products", None, None).await;
        list["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["productId"] == "YEAR-STROM")
            .map(|p| p["unitPrice"].clone())
    };
    crm.change("product", product("0.3100")).await;
    assert_eq!(products().await, Some(json!("0.3100")));
    crm.change("product", product("0.2900")).await;
    assert_eq!(products().await, Some(json!("0.2900")));
    crm.delete("product", "YEAR-STROM").await;
    assert_eq!(products().await, None);

    // 7. Documents and the inbox configuration (one setting for every customer: the inbox
    // tests wait meanwhile). Categories and an attribute narrow the inbox; removed, the
    // deployment's fallback (everything) applies again.
    crm.change("document", document("D-2026-900001", "INVOICE", &day(10), "PORTAL")).await;
    crm.change("document", document("D-2026-900002", "LETTER", &day(9), "POST")).await;
    crm.change("document", document("D-2026-900003", "LETTER", &day(8), "PORTAL")).await;
    {
        let _inbox = INBOX_CONFIGURATION.write().await;
        assert_eq!(inbox(token).await, ["D-2026-900003", "D-2026-900002", "D-2026-900001"]);
        let configuration = |categories: Value, attribute: Value| json!({"categories": categories, "maxAgeDays": 365, "attribute": attribute});
        crm.change("inboxConfiguration", configuration(json!(["LETTER"]), Value::Null)).await;
        assert_eq!(inbox(token).await, ["D-2026-900003", "D-2026-900002"]);
        let (status, _, _) = call(Method::GET, "/v1/me/documents/D-2026-900001", None, Some(token)).await;
        assert_eq!(status, 404, "a document the inbox does not show is not downloaded either");
        crm.change("inboxConfiguration", configuration(Value::Null, json!({"name": "dispatch", "values": ["PORTAL"]})))
            .await;
        assert_eq!(inbox(token).await, ["D-2026-900003", "D-2026-900001"]);
        crm.delete("inboxConfiguration", "inbox").await;
        assert_eq!(inbox(token).await, ["D-2026-900003", "D-2026-900002", "D-2026-900001"]);
    }

    // 8. A deletion sticks: a late, older update of the deleted document is ignored.
    let before_delete = crm.version;
    crm.delete("document", "D-2026-900002").await;
    let late = crm.change_at(before_delete, "document", document("D-2026-900002", "LETTER", &day(9), "POST")).await;
    assert_eq!((late.applied, late.ignored), (0, 1), "{late:?}");
    {
        let _inbox = INBOX_CONFIGURATION.read().await;
        assert_eq!(inbox(token).await, ["D-2026-900003", "D-2026-900001"]);
    }

    // 9. A contact change the CRM rejects: the CRM's mobile number is back at once, and she
    // is told why.
    let path = format!("/v1/customers/{CUSTOMER}/contact");
    let (status, receipt) =
        send(Method::PATCH, &path, Some(&json!({"mobile": "+49 170 2222222"})), Some(token), None).await;
    assert_eq!(status, 202, "{receipt}");
    let (_, _, shown) = call(Method::GET, &format!("/v1/customers/{CUSTOMER}"), None, Some(token)).await;
    assert_eq!(shown["mobile"], "+49 170 2222222", "shown at once while the CRM checks it");
    crm.status(&receipt["requestId"], "CONTACT_DATA_CHANGE", "REJECTED", json!("Die Nummer ist nicht erreichbar."))
        .await;
    let (_, _, shown) = call(Method::GET, &format!("/v1/customers/{CUSTOMER}"), None, Some(token)).await;
    assert_eq!(
        (&shown["mobile"], &shown["pendingContactChange"]),
        (&json!("+49 170 1111111"), &Value::Null),
        "{shown}"
    );
    let request_id = receipt["requestId"].as_str().unwrap();
    let mails = mails_to(EMAIL).await;
    assert!(
        mails.iter().any(|m| m.contains(request_id) && m.contains("Grund: Die Nummer ist nicht erreichbar.")),
        "{mails:?}"
    );

    // 10. Move-out: the CRM ends the contract 2 days back. A reading dated later is refused,
    // the meter leaves the dashboard; the move-out reading on the last day is still taken.
    crm.change("contract", contract(json!(day(2)))).await;
    assert_eq!(dashboard_meters(token).await, Vec::<String>::new());
    let (status, problem) = submit(token, NEW_METER, &day(1), "45").await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("READING_AFTER_SUPPLY_END")), "{problem}");
    let (status, receipt) = submit(token, NEW_METER, &day(2), "44").await;
    assert_eq!(status, 202, "the move-out reading: {receipt}");

    // Over the year one initial password was mailed, at the approval.
    let mails = mails_to(EMAIL).await;
    assert_eq!(mails.iter().filter(|m| m.contains("Initialpasswort:")).count(), 1, "{mails:?}");
}
