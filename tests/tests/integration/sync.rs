//! The inbound sync against the emulator: out-of-order and repeated entity changes, a
//! poison message among good ones, the reactivation of a deleted login, request status
//! feedback — and, over HTTP, the customer's requests list with the status the CRM sent.

use integration_tests::{call, demo_session, isolated_stack_with_demo, send, served_sync};
use portal_domain::clock::FixedClock;
use portal_domain::identity::access::{AccessService, LockoutPolicy};
use portal_domain::identity::sessions::SessionPolicy;
use portal_platform::sync::{Outcome, SyncReport};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

fn partner_change(version: u64, phone: &str) -> String {
    json!({
        "messageType": "crm.entity-changed", "messageId": format!("m-{version}-{phone}"),
        "occurredAt": "2026-12-01T10:00:00Z", "entityType": "businessPartner", "version": version,
        "entity": {
            "partnerNumber": "1000001", "partnerType": "PERSON", "salutation": "Frau", "title": null,
            "firstName": "Erika", "lastName": "Mustermann",
            "address": {"street": "Heidestraße", "houseNumber": "17", "postalCode": "51147", "city": "Köln", "country": "DE"},
            "phone": phone, "mobile": null, "fax": null, "email": "erika.mustermann@example.org",
            "notificationConsent": true, "accountManager": null
        }
    })
    .to_string()
}

async fn erikas_phone(stack: &integration_tests::Stack) -> String {
    let items = stack.items(&stack.config.tables.business_partners).await;
    let erika = items.iter().find(|i| integration_tests::s(i, "partnerNumber") == "1000001").unwrap();
    integration_tests::s(erika, "phone")
}

#[tokio::test]
async fn an_older_or_repeated_change_is_ignored() {
    let stack = isolated_stack_with_demo().await;
    let sync = stack.sync();
    assert_eq!(sync.apply(&partner_change(7, "+49 221 7777")).await.unwrap(), Outcome::Applied);
    assert_eq!(sync.apply(&partner_change(6, "+49 221 6666")).await.unwrap(), Outcome::Ignored, "older");
    assert_eq!(sync.apply(&partner_change(7, "+49 221 7777")).await.unwrap(), Outcome::Ignored, "redelivered");
    assert_eq!(erikas_phone(&stack).await, "+49 221 7777");
    assert_eq!(sync.apply(&partner_change(8, "+49 221 8888")).await.unwrap(), Outcome::Applied);
    assert_eq!(erikas_phone(&stack).await, "+49 221 8888");
    // The mirror still reads as the entity (the version is bookkeeping only).
    let reads = stack.live().directory();
    let partner = portal_domain::ports::CustomerDirectory::partner(
        &reads,
        &portal_domain::ids::CustomerNumber::parse("1000001").unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(partner.phone.as_deref(), Some("+49 221 8888"));
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_queue_and_the_others_are_applied() {
    let stack = isolated_stack_with_demo().await;
    let sync = stack.sync();
    let mut broken_iban = serde_json::from_str::<Value>(&partner_change(1, "x")).unwrap();
    broken_iban["entityType"] = json!("contractAccount");
    broken_iban["entity"] = json!({"accountNumber": "800000001", "partnerNumber": "1000001"});
    let batch = vec![
        ("a".to_owned(), "{not json".to_owned()),
        ("b".to_owned(), partner_change(3, "+49 221 3333")),
        ("c".to_owned(), broken_iban.to_string()),
        ("d".to_owned(), json!({"messageType": "crm.entity-deleted", "messageId": "x", "occurredAt": "2026-12-01T10:00:00Z", "entityType": "portalLogin", "version": 1, "key": "L-0000001"}).to_string()),
    ];
    let (report, failed) = sync.handle_batch(&batch).await;
    assert_eq!(report, SyncReport { applied: 1, ignored: 0, dead_lettered: 3, failed: 0 });
    assert!(failed.is_empty(), "nothing is delivered again");
    assert_eq!(erikas_phone(&stack).await, "+49 221 3333");

    let out = stack
        .clients
        .sqs
        .receive_message()
        .queue_url(&stack.config.inbound_dead_letter_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let messages = out.messages.unwrap_or_default();
    assert_eq!(messages.len(), 3);
    for m in &messages {
        let reason = m.message_attributes().and_then(|a| a.get("reason")).and_then(|r| r.string_value()).unwrap();
        assert!(!reason.is_empty() && !reason.contains("Mustermann"), "{reason}");
    }
}

#[tokio::test]
async fn a_deleted_login_reactivated_through_an_inbound_message_can_log_in() {
    let stack = isolated_stack_with_demo().await;
    let live = stack.live();
    let access = AccessService {
        logins: live.logins(),
        sessions: live.sessions(),
        tokens: live.tokens(),
        mailer: live.mailer(),
        throttle: live.throttle(),
        clock: FixedClock(time::OffsetDateTime::now_utc()),
        session_policy: SessionPolicy::default(),
        lockout: LockoutPolicy::default(),
        limiter: live.limiter(),
        budgets: Default::default(),
    };
    let password = SecretString::from("Demo-Passwort-2026");
    assert!(access.login("kweber", &password, &Default::default()).await.is_err(), "deleted");

    let mut login: Value = serde_json::from_str(integration_tests::DEMO_EXPORT).unwrap();
    let mut kweber = login["portalLogins"].as_array_mut().unwrap().remove(1);
    assert_eq!(kweber["username"], "kweber");
    kweber["status"] = json!("AKTIV");
    login = json!({
        "messageType": "crm.entity-changed", "messageId": "reactivate-kweber", "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "portalLogin", "version": 2, "entity": kweber,
    });
    // Through the inbound queue, as the CRM sends it.
    stack
        .clients
        .sqs
        .send_message()
        .queue_url(&stack.config.inbound_queue_url)
        .message_body(login.to_string())
        .send()
        .await
        .unwrap();
    let report = stack.sync().poll(&stack.config.inbound_queue_url).await.unwrap();
    assert_eq!(report.applied, 1, "{report:?}");
    let grant = access.login("kweber", &password, &Default::default()).await.expect("reactivated");
    assert!(!grant.must_change_password);
}

#[tokio::test]
async fn the_requests_list_shows_what_the_crm_reported() {
    let bakery = demo_session("L-0000003", &["1000003"], false).await;
    let message = |subject: &str| json!({"reason": "BILLING", "subject": subject, "text": "Bitte prüfen."});
    let (_, first) = send(Method::POST, "/v1/messages", Some(&message("Erste Frage")), Some(&bakery), None).await;
    let (_, second) = send(Method::POST, "/v1/messages", Some(&message("Zweite Frage")), Some(&bakery), None).await;
    let (first, second) = (first["requestId"].as_str().unwrap(), second["requestId"].as_str().unwrap());

    let (sync, _, _) = served_sync().await;
    // Processed: through the inbound queue and the local poll.
    let processed = json!({
        "messageType": "crm.request-status-changed", "messageId": "s-1", "occurredAt": "2026-12-01T12:00:00Z",
        "requestId": first, "requestType": "MESSAGE", "status": "PROCESSED", "reason": null,
    });
    let report = integration_tests::through_inbound_queue(&[processed]).await;
    assert!(report.applied >= 1, "{report:?}");
    // Rejected, with a reason; a repeat changes nothing; an unknown request is refused.
    let rejected = json!({
        "messageType": "crm.request-status-changed", "messageId": "s-2", "occurredAt": "2026-12-01T12:00:00Z",
        "requestId": second, "requestType": "MESSAGE", "status": "REJECTED", "reason": "Bitte nutzen Sie das Formular für Gewerbekunden.",
    });
    assert_eq!(sync.apply(&rejected.to_string()).await.unwrap(), Outcome::Applied);
    assert_eq!(sync.apply(&rejected.to_string()).await.unwrap(), Outcome::Ignored);
    let mut unknown = rejected.clone();
    unknown["requestId"] = json!(uuid::Uuid::new_v4().to_string());
    assert!(matches!(sync.apply(&unknown.to_string()).await.unwrap(), Outcome::Unusable(_)));

    let (status, _, list) = call(Method::GET, "/v1/me/requests?limit=100", None, Some(&bakery)).await;
    assert_eq!(status, 200, "{list}");
    assert!(portal_platform::schemas::compile("requests.response.schema.json").unwrap().is_valid(&list), "{list}");
    let requests = list["requests"].as_array().unwrap();
    let find = |id: &str| requests.iter().find(|r| r["requestId"] == id).cloned().unwrap();
    assert_eq!(
        (find(first)["status"].as_str(), find(first)["requestType"].as_str()),
        (Some("PROCESSED"), Some("MESSAGE"))
    );
    assert_eq!(find(second)["status"], "REJECTED");
    assert_eq!(find(second)["statusReason"], "Bitte nutzen Sie das Formular für Gewerbekunden.");
    let times: Vec<&str> = requests.iter().map(|r| r["submittedAt"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // Paginated: one at a time, nothing twice, nothing left out.
    let mut seen = Vec::new();
    let mut path = "/v1/me/requests?limit=1".to_owned();
    loop {
        let (status, _, page) = call(Method::GET, &path, None, Some(&bakery)).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["requests"].as_array().unwrap().iter().map(|r| r["requestId"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/me/requests?limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= requests.len() + 20, "the pages end");
    }
    assert!(seen.contains(&first.to_owned()) && seen.contains(&second.to_owned()));
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no request twice");

    let (status, _, problem) = call(Method::GET, "/v1/me/requests?limit=0", None, Some(&bakery)).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("VALIDATION_FAILED")));
    let (status, _, _) = call(Method::GET, "/v1/me/requests", None, None).await;
    assert_eq!(status, 401);
    // Another customer sees none of the bakery's requests.
    let other = demo_session("L-0000001", &["1000002"], false).await;
    let (_, _, theirs) = call(Method::GET, "/v1/me/requests?limit=100", None, Some(&other)).await;
    assert!(theirs["requests"].as_array().unwrap().iter().all(|r| r["customerNumber"] == "1000002"), "{theirs}");
}

#[tokio::test]
async fn the_operator_redrives_both_dead_letter_queues() {
    use portal_platform::redrive::{Target, redrive};
    let stack = integration_tests::isolated_stack().await;
    let (sqs, c) = (&stack.clients.sqs, &stack.config);
    let envelope = json!({"eventType": "message.received", "requestId": "5f0c6a3e-2d1b-4c8e-9a7f-1b2c3d4e5f60", "customerNumber": null});
    sqs.send_message()
        .queue_url(&c.requests_dead_letter_url)
        .message_body(envelope.to_string())
        .message_group_id("UNASSIGNED-5f0c6a3e-2d1b-4c8e-9a7f-1b2c3d4e5f60")
        .message_deduplication_id("5f0c6a3e-2d1b-4c8e-9a7f-1b2c3d4e5f60")
        .send()
        .await
        .unwrap();
    sqs.send_message().queue_url(&c.inbound_dead_letter_url).message_body("{\"fixed\": true}").send().await.unwrap();

    assert_eq!(
        redrive(sqs, &c.requests_dead_letter_url, &c.requests_queue_url, Target::RequestsFifo).await.unwrap(),
        1
    );
    assert_eq!(redrive(sqs, &c.inbound_dead_letter_url, &c.inbound_queue_url, Target::Standard).await.unwrap(), 1);
    assert_eq!(stack.drain_queue().await, vec![envelope]);
    assert_eq!(integration_tests::drain(sqs, &c.inbound_queue_url).await, vec![json!({"fixed": true})]);
    assert!(integration_tests::drain(sqs, &c.requests_dead_letter_url).await.is_empty());
}

fn kweber_active(version: u64) -> String {
    let export: Value = serde_json::from_str(integration_tests::DEMO_EXPORT).unwrap();
    let mut kweber = export["portalLogins"][1].clone();
    kweber["status"] = json!("AKTIV");
    json!({
        "messageType": "crm.entity-changed", "messageId": format!("kweber-{version}"), "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "portalLogin", "version": version, "entity": kweber,
    })
    .to_string()
}

#[tokio::test]
async fn a_customer_number_another_login_holds_stays_with_that_login() {
    let stack = isolated_stack_with_demo().await;
    // Klaus Weber registered anew after his old login was deleted.
    stack
        .clients
        .dynamo
        .put_item()
        .table_name(&stack.config.tables.login_claims)
        .item("claimKey", aws_sdk_dynamodb::types::AttributeValue::S("PARTNER#1000004".into()))
        .item("loginId", aws_sdk_dynamodb::types::AttributeValue::S("L-NEW".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(stack.sync().apply(&kweber_active(2)).await.unwrap(), Outcome::Applied);
    let logins = stack.items(&stack.config.tables.portal_logins).await;
    let old = logins.iter().find(|l| integration_tests::s(l, "loginId") == "L-0000002").unwrap();
    assert_eq!(old["partnerNumbers"].as_l().unwrap().len(), 0, "the reactivated login does not get 1000004");
    assert_eq!(integration_tests::s(old, "status"), "AKTIV");
}

#[tokio::test]
async fn a_rejected_installment_change_is_no_longer_pending() {
    use portal_domain::installments::{InstallmentPolicy, InstallmentService};
    let stack = isolated_stack_with_demo().await;
    let live = stack.live();
    let today = portal_domain::clock::Clock::today(&portal_domain::clock::SystemClock);
    let caller = portal_domain::identity::sessions::Caller {
        login_id: portal_domain::ids::LoginId::parse("L-0000001").unwrap(),
        partner_numbers: vec![portal_domain::ids::CustomerNumber::parse("1000002").unwrap()],
        must_change_password: false,
        token_hash: String::new(),
        signed_in_at: time::OffsetDateTime::now_utc(),
    };
    let service = InstallmentService {
        reads: live.reads(),
        writer: live.writer(),
        clock: portal_domain::clock::SystemClock,
        policy: InstallmentPolicy::default(),
    };
    let account = portal_domain::ids::AccountNumber::parse("800000002").unwrap();
    let due = portal_domain::reads::next_due_date(today + time::Duration::days(1), 1);
    let answer = service.change(&caller, &account, rust_decimal::Decimal::new(7000, 2), due, None).await.unwrap();
    let plan = || async {
        portal_domain::reads::ScopedReads::installment_plan(&live.reads(), &caller, &account)
            .await
            .unwrap()
            .unwrap()
            .entity
    };
    assert!(plan().await.pending_change.is_some());
    let again = service.change(&caller, &account, rust_decimal::Decimal::new(7500, 2), due, None).await;
    assert!(matches!(
        again,
        Err(portal_domain::changes::ChangeError::NotPossible { code: "INSTALLMENT_CHANGE_PENDING", .. })
    ));

    let rejected = json!({
        "messageType": "crm.request-status-changed", "messageId": "r-1", "occurredAt": "2026-12-01T12:00:00Z",
        "requestId": answer["requestId"], "requestType": "INSTALLMENT_CHANGE", "status": "REJECTED",
        "reason": "Der Abschlag deckt den Verbrauch nicht.",
    });
    assert_eq!(stack.sync().apply(&rejected.to_string()).await.unwrap(), Outcome::Applied);
    assert_eq!(plan().await.pending_change, None, "a new change is possible again");
    assert!(service.change(&caller, &account, rust_decimal::Decimal::new(7500, 2), due, None).await.is_ok());
}

/// A login that waited for the CRM's approval gets its initial password when the CRM
/// approves it, valid for 72 hours from then; it signs in with it and must change it. A
/// redelivered approval sends nothing again.
#[tokio::test]
async fn an_approved_login_gets_its_initial_password_then() {
    use integration_tests::mails_to;
    let (sync, _, _) = served_sync().await;
    let login = |status: &str, version: u64| {
        json!({
            "messageType": "crm.entity-changed", "messageId": format!("approval-{version}"),
            "occurredAt": "2026-12-01T10:00:00Z", "entityType": "portalLogin", "version": version,
            "entity": {
                "loginId": "L-TESTAPPROVAL", "username": "freigabe.test", "email": "Freigabe.Test@example.org",
                "status": status, "partnerNumbers": [], "mustChangePassword": true,
                "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "createdAt": "2026-12-01T09:00:00Z"
            }
        })
        .to_string()
    };
    assert_eq!(sync.apply(&login("AUSSTEHEND", 1)).await.unwrap(), Outcome::Applied);
    assert!(mails_to("freigabe.test@example.org").await.is_empty(), "no password while it waits");

    let before = time::OffsetDateTime::now_utc();
    assert_eq!(sync.apply(&login("AKTIV", 2)).await.unwrap(), Outcome::Applied);
    let mails = mails_to("freigabe.test@example.org").await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let password = mails[0].lines().find_map(|l| l.strip_prefix("Initialpasswort: ")).expect("the initial password");
    assert!(mails[0].contains("72 Stunden"), "{}", mails[0]);
    let (status, _, session) = call(
        reqwest::Method::POST,
        "/v1/sessions",
        Some(&json!({"username": "freigabe.test", "password": password})),
        None,
    )
    .await;
    assert_eq!((status, session["mustChangePassword"].as_bool()), (201, Some(true)), "{session}");
    // Valid for 72 hours from the approval on.
    let (config, clients) = integration_tests::served().await;
    let stored = clients
        .dynamo
        .get_item()
        .table_name(&config.tables.portal_logins)
        .key("loginId", aws_sdk_dynamodb::types::AttributeValue::S("L-TESTAPPROVAL".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires = time::OffsetDateTime::parse(
        stored["passwordExpiresAt"].as_s().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = expires - before;
    assert!(
        lifetime >= time::Duration::hours(72) - time::Duration::minutes(1)
            && lifetime <= time::Duration::hours(72) + time::Duration::minutes(1),
        "{lifetime}"
    );

    // The same approval again (a login write accepts its own version again): no new password.
    sync.apply(&login("AKTIV", 2)).await.unwrap();
    assert_eq!(mails_to("freigabe.test@example.org").await.len(), 1);
}

/// Code lists follow the CRM: an entry added, a termination reason's rule changed, an entry
/// removed; a late older version changes nothing.
#[tokio::test]
async fn code_lists_follow_the_crm() {
    use portal_domain::reads::Catalog;
    let stack = isolated_stack_with_demo().await;
    let sync = stack.sync();
    let reads = stack.live().reads();
    let entry = |version: u64, entity: Value| {
        json!({
            "messageType": "crm.entity-changed", "messageId": format!("cl-{version}"), "occurredAt": "2026-12-01T10:00:00Z",
            "entityType": "codeListEntry", "version": version, "entity": entity,
        })
        .to_string()
    };
    let stricter = json!({"listName": "terminationReasons", "key": "MOVE_OUT", "label": "Auszug / Umzug",
                          "terminationRule": {"earliestDaysFromToday": -14, "moveOutDateRequired": true}});
    assert_eq!(sync.apply(&entry(5, stricter)).await.unwrap(), Outcome::Applied);
    let older = json!({"listName": "terminationReasons", "key": "MOVE_OUT", "label": "Alt",
                       "terminationRule": {"earliestDaysFromToday": -42, "moveOutDateRequired": true}});
    assert_eq!(sync.apply(&entry(4, older)).await.unwrap(), Outcome::Ignored);
    let solar = json!({"listName": "messageReasons", "key": "SOLAR", "label": "Solaranlage", "routeTo": "technik"});
    assert_eq!(sync.apply(&entry(6, solar)).await.unwrap(), Outcome::Applied);
    let removed = json!({
        "messageType": "crm.entity-deleted", "messageId": "cl-del", "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "codeListEntry", "version": 7, "key": "terminationReasons#OTHER",
    });
    assert_eq!(sync.apply(&removed.to_string()).await.unwrap(), Outcome::Applied);

    let reasons = reads.code_list("terminationReasons").await.unwrap();
    let move_out = reasons.iter().find(|r| r.key == "MOVE_OUT").unwrap();
    assert_eq!(move_out.termination_rule.map(|r| r.earliest_days_from_today), Some(-14));
    assert!(!reasons.iter().any(|r| r.key == "OTHER"), "removed");
    let messages = reads.code_list("messageReasons").await.unwrap();
    assert_eq!(messages.iter().find(|r| r.key == "SOLAR").and_then(|r| r.route_to.as_deref()), Some("technik"));
}

/// Deletions stick: a deleted entity leaves a versioned tombstone, so a late, older change
/// does not bring it back; the reads pass over it as over a missing item; a newer change
/// brings the entity back.
#[tokio::test]
async fn a_deletion_sticks_against_a_late_older_change() {
    use portal_domain::reads::Catalog;
    let stack = isolated_stack_with_demo().await;
    let sync = stack.sync();
    let reads = stack.live().reads();
    let product = |version: u64, name: &str| {
        json!({
            "messageType": "crm.entity-changed", "messageId": format!("p-{version}"), "occurredAt": "2026-12-01T10:00:00Z",
            "entityType": "product", "version": version,
            "entity": {"productId": "STROM-BASIS", "name": name, "commodity": "ELECTRICITY", "customerType": "PRIVATE",
                       "basePricePerYear": "120.00", "unitPrice": "0.3190", "unit": "kWh"}
        })
        .to_string()
    };
    let deleted = json!({
        "messageType": "crm.entity-deleted", "messageId": "p-del", "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "product", "version": 10, "key": "STROM-BASIS",
    })
    .to_string();
    let ids = |products: Vec<portal_domain::entities::Product>| -> Vec<String> {
        products.into_iter().map(|p| p.product_id.to_string()).collect()
    };
    assert!(ids(reads.products().await.unwrap()).contains(&"STROM-BASIS".to_owned()));
    assert_eq!(sync.apply(&deleted).await.unwrap(), Outcome::Applied);
    assert!(!ids(reads.products().await.unwrap()).contains(&"STROM-BASIS".to_owned()), "deleted");
    // A late, older change (sent before the deletion, delivered after it) is ignored.
    assert_eq!(sync.apply(&product(9, "Strom Basis (alt)")).await.unwrap(), Outcome::Ignored);
    assert!(!ids(reads.products().await.unwrap()).contains(&"STROM-BASIS".to_owned()), "still deleted");
    // A newer change brings it back.
    assert_eq!(sync.apply(&product(11, "Strom Basis 2027")).await.unwrap(), Outcome::Applied);
    let products = reads.products().await.unwrap();
    assert_eq!(
        products.iter().find(|p| p.product_id.as_str() == "STROM-BASIS").map(|p| p.name.as_str()),
        Some("Strom Basis 2027")
    );

    // The same for an entity of a customer: a deleted contract is gone for the reads, and
    // its late older version stays out.
    let contract = |version: u64| {
        json!({
            "messageType": "crm.entity-changed", "messageId": format!("c-{version}"), "occurredAt": "2026-12-01T10:00:00Z",
            "entityType": "contract", "version": version, "partnerNumber": "1000001",
            "entity": {
                "contractNumber": "5000001", "accountNumber": "800000001", "productId": "HEIZSTROM-HTNT",
                "startDate": "2021-03-01", "endDate": null, "installationId": "A-7000001",
                "consumptionPoint": {"maloId": "51234567895", "address": {"street": "Heidestraße", "houseNumber": "17", "postalCode": "51147", "city": "Köln", "country": "DE"}}
            }
        })
        .to_string()
    };
    let contract_deleted = json!({
        "messageType": "crm.entity-deleted", "messageId": "c-del", "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "contract", "version": 20, "partnerNumber": "1000001", "key": "5000001",
    })
    .to_string();
    assert_eq!(sync.apply(&contract_deleted).await.unwrap(), Outcome::Applied);
    assert_eq!(sync.apply(&contract(19)).await.unwrap(), Outcome::Ignored);
    let directory = stack.live().directory();
    let contracts = portal_domain::ports::CustomerDirectory::contracts(
        &directory,
        &portal_domain::ids::CustomerNumber::parse("1000001").unwrap(),
    )
    .await
    .unwrap();
    assert!(contracts.iter().all(|c| c.entity.contract_number.as_str() != "5000001"), "{contracts:?}");
}
