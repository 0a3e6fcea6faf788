//! What a logged-in customer sees, end to end, and the authorization matrix: every
//! endpoint × {no session, owner, another customer, must-change-password login}.

use integration_tests::{call, demo_session, login_with_password};
use portal_platform::schemas;
use reqwest::Method;
use serde_json::Value;

/// jmueller's objects (customer 1000002): electricity 800000002 / 5000002, gas 800000003 / 5000003.
const OWNED: &[(&str, &str)] = &[
    ("/v1/customers/1000002", "customer.response.schema.json"),
    ("/v1/contract-accounts/800000003/contracts", "account-contracts.response.schema.json"),
    ("/v1/contracts/5000003", "contract.response.schema.json"),
    ("/v1/contract-accounts/800000003/installment-plan", "installment-plan.response.schema.json"),
    ("/v1/contract-accounts/800000002/bank-details", "bank-details.response.schema.json"),
    ("/v1/meters/7ELS8135012345/readings", "meter-readings.response.schema.json"),
    ("/v1/meters/1ESY1160012345/consumption", "consumption.response.schema.json"),
];

/// The same kinds of objects that do not exist.
const UNKNOWN: &[&str] = &[
    "/v1/customers/9999999",
    "/v1/contract-accounts/899999999/contracts",
    "/v1/contracts/5999999",
    "/v1/contract-accounts/899999999/installment-plan",
    "/v1/contract-accounts/899999999/bank-details",
    "/v1/meters/9ZZZ9999999999/readings",
    "/v1/meters/9ZZZ9999999999/consumption",
];

#[tokio::test]
async fn every_endpoint_answers_each_kind_of_caller_as_documented() {
    let owner = demo_session("L-0000001", &["1000002"], false).await;
    let other = demo_session("L-0000003", &["1000003"], false).await;
    let must_change = demo_session("L-0000001", &["1000002"], true).await;

    for ((path, schema), unknown) in OWNED.iter().zip(UNKNOWN) {
        let (status, content_type, body) = call(Method::GET, path, None, Some(&owner)).await;
        assert_eq!(status, 200, "owner {path}: {body}");
        assert_eq!(content_type, "application/json");
        assert!(schemas::compile(schema).unwrap().is_valid(&body), "{path}: {body}");

        let (status, _, body) = call(Method::GET, path, None, None).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHENTICATED")), "no session {path}");

        let (status, _, body) = call(Method::GET, path, None, Some(&must_change)).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("PASSWORD_CHANGE_REQUIRED")), "must change {path}");

        // Another customer's object answers exactly like an unknown one, and shows nothing.
        let (status, _, foreign) = call(Method::GET, path, None, Some(&other)).await;
        let (unknown_status, _, missing) = call(Method::GET, unknown, None, Some(&owner)).await;
        assert_eq!((status, unknown_status), (404, 404), "other customer {path}");
        assert_eq!((&foreign["code"], &foreign["detail"]), (&missing["code"], &missing["detail"]));
        assert!(!foreign.to_string().contains("1000002") && !foreign.to_string().contains("Müller"));
    }

    // The examples: jmueller asking for Erika's customer data and meter.
    for path in ["/v1/customers/1000001", "/v1/meters/1EMH0012345678/readings", "/v1/meters/1EMH0012345678/consumption"]
    {
        let (status, _, body) = call(Method::GET, path, None, Some(&owner)).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{path}");
        assert!(!body.to_string().contains("Mustermann"));
    }

    // A deleted login has no way in: it cannot open a session (its open sessions ended
    // with the deletion, see identity_e2e), so it sees what a caller without one sees.
    let (status, _, refused) = call(
        Method::POST,
        "/v1/sessions",
        Some(&serde_json::json!({"username": "kweber", "password": "Demo-Passwort-2026"})),
        None,
    )
    .await;
    assert_eq!((status, refused["code"].as_str()), (401, Some("INVALID_CREDENTIALS")));
}

#[tokio::test]
async fn the_read_side_shows_the_mirror_exactly() {
    let owner = demo_session("L-0000001", &["1000002"], false).await;
    let get = |path: &'static str| {
        let token = owner.clone();
        async move { call(Method::GET, path, None, Some(&token)).await.2 }
    };

    let plan = get("/v1/contract-accounts/800000003/installment-plan").await;
    assert_eq!((plan["amount"].as_str(), plan["changePossible"].as_bool()), (Some("118.00"), Some(false)));
    assert_eq!(plan["changeRefusedReason"], "LAST_EXECUTION_IN_PROGRESS");
    let open = get("/v1/contract-accounts/800000002/installment-plan").await;
    assert_eq!(open["changePossible"], true);
    assert_eq!(open["sum"], "732.00", "12 installments of 61.00");

    let bank = get("/v1/contract-accounts/800000002/bank-details").await;
    assert_eq!(bank["paymentMethod"], "BANK_TRANSFER");
    assert_eq!(bank["payoutAccount"]["iban"], "******************3456");
    assert!(!bank.to_string().contains("DE64850503003120123456"));

    let contracts = get("/v1/contract-accounts/800000003/contracts").await;
    assert_eq!(contracts["contracts"].as_array().map(Vec::len), Some(1));
    assert_eq!(contracts["contracts"][0]["maloId"], "53456789017");
    assert_eq!(contracts["billRecipient"]["name"], "Hausverwaltung Elbblick GmbH");

    let customer = get("/v1/customers/1000002").await;
    assert_eq!(
        (customer["lastName"].as_str(), customer["notificationConsent"].as_bool()),
        (Some("Müller-Lüdenscheidt"), Some(false))
    );
}

#[tokio::test]
async fn products_and_code_lists_are_public() {
    let (status, _, products) = call(Method::GET, "/v1/products", None, None).await;
    assert_eq!(status, 200);
    assert!(schemas::compile("products.response.schema.json").unwrap().is_valid(&products), "{products}");
    let heat_pump =
        products["products"].as_array().unwrap().iter().find(|p| p["productId"] == "HEIZSTROM-HTNT").unwrap();
    assert_eq!((heat_pump["unitPrice"].as_str(), heat_pump["unitPriceLow"].as_str()), (Some("0.2980"), Some("0.2490")));

    let (status, _, reasons) = call(Method::GET, "/v1/code-lists/messageReasons", None, None).await;
    assert_eq!(status, 200);
    assert!(schemas::compile("code-list.response.schema.json").unwrap().is_valid(&reasons), "{reasons}");
    let meter: &Value = reasons["values"].as_array().unwrap().iter().find(|v| v["key"] == "METER").unwrap();
    assert_eq!(meter["routeTo"], "messwesen");

    let (status, _, unknown) = call(Method::GET, "/v1/code-lists/noSuchList", None, None).await;
    assert_eq!((status, unknown["code"].as_str()), (404, Some("NOT_FOUND")));
}

#[tokio::test]
async fn a_reported_rollover_shows_as_consumption_through_zero() {
    // Petra's five-digit meter stands at 99740; she reports 00120 today, anonymously.
    let today = portal_domain::entities::iso_date::format(portal_domain::clock::Clock::today(
        &portal_domain::clock::SystemClock,
    ));
    let reading = serde_json::json!({
        "customerNumber": "1000005", "lastName": "Schulz", "meterNumber": "1EBZ0012398765", "readingDate": today,
        "values": [{"register": "SINGLE", "value": "00120"}]
    });
    let (status, _, receipt) = call(Method::POST, "/v1/anonymous/meter-readings", Some(&reading), None).await;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(
        (receipt["values"][0]["rollover"].as_bool(), receipt["values"][0]["consumption"].as_str()),
        (Some(true), Some("380"))
    );

    let petra = demo_session("L-TEST0005", &["1000005"], false).await;
    let (status, _, readings) = call(Method::GET, "/v1/meters/1EBZ0012398765/readings", None, Some(&petra)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (readings["history"][0]["value"].as_str(), readings["history"][0]["source"].as_str()),
        (Some("120"), Some("CUSTOMER"))
    );
    let (status, _, consumption) = call(Method::GET, "/v1/meters/1EBZ0012398765/consumption", None, Some(&petra)).await;
    assert_eq!(status, 200);
    assert!(schemas::compile("consumption.response.schema.json").unwrap().is_valid(&consumption), "{consumption}");
    let periods = consumption["periods"].as_array().unwrap();
    let total: i64 = periods
        .iter()
        .filter(|p| p["periodStart"].as_str() > Some("2026-11-30"))
        .map(|p| p["total"].as_str().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 380, "{consumption}");
    let november = periods.iter().find(|p| p["periodStart"] == "2026-11-01").unwrap();
    assert_eq!((november["total"].as_str(), november["complete"].as_bool()), (Some("349"), Some(true)));
}

#[tokio::test]
async fn gas_consumption_keeps_its_decimals() {
    let owner = demo_session("L-0000001", &["1000002"], false).await;
    let (_, _, consumption) = call(Method::GET, "/v1/meters/7ELS8135012345/consumption", None, Some(&owner)).await;
    let november =
        consumption["periods"].as_array().unwrap().iter().find(|p| p["periodStart"] == "2026-11-01").unwrap().clone();
    assert_eq!(november["total"], "130.164");
    assert_eq!(consumption["unit"], "m3");
}

#[tokio::test]
async fn the_inbox_lists_filters_and_downloads_only_the_customers_documents() {
    let _inbox = integration_tests::INBOX_CONFIGURATION.read().await;
    let owner = demo_session("L-0000001", &["1000002"], false).await;
    let (status, _, inbox) = call(Method::GET, "/v1/me/documents", None, Some(&owner)).await;
    assert_eq!(status, 200, "{inbox}");
    assert!(schemas::compile("documents.response.schema.json").unwrap().is_valid(&inbox), "{inbox}");
    let ids: Vec<&str> =
        inbox["documents"].as_array().unwrap().iter().map(|d| d["documentId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["D-2026-000202", "D-2026-000201"], "newest first, only Jürgen's");

    let (_, _, filtered) =
        call(Method::GET, "/v1/me/documents?category=INVOICE&from=2026-08-01", None, Some(&owner)).await;
    assert_eq!(filtered["documents"].as_array().map(Vec::len), Some(1));
    let (status, _, bad) = call(Method::GET, "/v1/me/documents?from=yesterday", None, Some(&owner)).await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("VALIDATION_FAILED")));

    // The download is the stored file, byte for byte, with its media type.
    let response = reqwest::Client::new()
        .get(format!("{}/v1/me/documents/D-2026-000202", integration_tests::api_url()))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let bytes = response.bytes().await.unwrap();
    let export: Value = serde_json::from_str(integration_tests::DEMO_EXPORT).unwrap();
    let stored = export["documents"].as_array().unwrap().iter().find(|d| d["documentId"] == "D-2026-000202").unwrap();
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.decode(stored["contentBase64"].as_str().unwrap()).unwrap();
    assert_eq!(bytes.as_ref(), expected.as_slice());

    // Erika's document is not Jürgen's: 404 like an unknown one.
    let (status, _, foreign) = call(Method::GET, "/v1/me/documents/D-2025-000102", None, Some(&owner)).await;
    let (_, _, unknown) = call(Method::GET, "/v1/me/documents/D-0000-000000", None, Some(&owner)).await;
    assert_eq!(status, 404);
    assert_eq!(
        foreign,
        Value::Object(
            unknown
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), if k == "requestId" { foreign["requestId"].clone() } else { v.clone() }))
                .collect()
        )
    );
    let (status, _, _) = call(Method::GET, "/v1/me/documents", None, None).await;
    assert_eq!(status, 401);
}

/// Every documented operation that needs a session refuses a caller without one (401) and
/// a login that must change its password first (403): no endpoint is reachable around the
/// authentication step. (The routes test in `portal_platform::schemas` ties every served
/// route to the OpenAPI document.)
#[tokio::test]
async fn no_secured_operation_is_reachable_without_a_valid_session() {
    let doc: Value = serde_json::from_str(include_str!("../../../schemas/openapi.json")).unwrap();
    let must_change = demo_session("L-0000001", &["1000002"], true).await;
    let samples = [
        ("{customerNumber}", "1000002"),
        ("{accountNumber}", "800000002"),
        ("{contractNumber}", "5000002"),
        ("{meterNumber}", "1ESY1160012345"),
        ("{documentId}", "D-2026-000201"),
    ];
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = samples.iter().fold(template.clone(), |p, (from, to)| p.replace(from, to));
        for (method, op) in item.as_object().unwrap() {
            if op.get("security").is_none() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(method, Method::POST | Method::PUT).then(|| serde_json::json!({}));
            // `[{}, {"session": []}]`: a session is optional (the contact form), but one
            // that is sent must be valid.
            let optional = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r == &serde_json::json!({})));
            if !optional {
                let (status, _, problem) = call(method.clone(), &path, body.as_ref(), None).await;
                assert_eq!(
                    (status, problem["code"].as_str()),
                    (401, Some("UNAUTHENTICATED")),
                    "{method} {path} without a session"
                );
            }
            let exempt = path == "/v1/me/password" || path == "/v1/sessions/current";
            if !exempt {
                let (status, _, problem) = call(method.clone(), &path, body.as_ref(), Some(&must_change)).await;
                assert_eq!(
                    (status, problem["code"].as_str()),
                    (403, Some("PASSWORD_CHANGE_REQUIRED")),
                    "{method} {path} before the password change"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} secured operations");
}

/// A new e-mail address is where the notices of sensitive changes go: after ten minutes it
/// takes the current password (a session left open cannot redirect them); phone numbers do not.
#[tokio::test]
async fn changing_the_e_mail_address_needs_the_current_password_after_a_while() {
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::minutes(30);
    let schulz =
        integration_tests::login_with_password("L-TESTEMAIL", &["1000005"], "Email-Passwort-2026", long_ago).await;
    let path = "/v1/customers/1000005/contact";
    let email = serde_json::json!({"email": "neu@example.org"});
    let (status, _, problem) = call(Method::PATCH, path, Some(&email), Some(&schulz)).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("REAUTHENTICATION_REQUIRED")), "{problem}");
    let wrong = serde_json::json!({"email": "neu@example.org", "currentPassword": "Falsches-Passwort-1"});
    let (status, _, problem) = call(Method::PATCH, path, Some(&wrong), Some(&schulz)).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("CURRENT_PASSWORD_WRONG")), "{problem}");
    let (_, _, customer) = call(Method::GET, "/v1/customers/1000005", None, Some(&schulz)).await;
    assert_ne!(customer["email"], "neu@example.org", "unchanged");
    let right = serde_json::json!({"email": "p.schulz.neu@example.org", "currentPassword": "Email-Passwort-2026"});
    let (status, _, receipt) = call(Method::PATCH, path, Some(&right), Some(&schulz)).await;
    assert_eq!(status, 202, "{receipt}");
    // A phone number alone needs no password.
    let phone = serde_json::json!({"mobile": "+49 171 2345678"});
    assert_eq!(call(Method::PATCH, path, Some(&phone), Some(&schulz)).await.0, 202);
}

#[tokio::test]
async fn a_contact_data_change_shows_at_once_marked_pending_and_goes_downstream_once() {
    let bakery = demo_session("L-0000003", &["1000003"], false).await;
    let change = serde_json::json!({"phone": "+49 7472 2000", "fax": null, "notificationConsent": false});
    let send = |body: Value, key: Option<&'static str>| {
        let token = bakery.clone();
        async move {
            let mut req = reqwest::Client::new()
                .patch(format!("{}/v1/customers/1000003/contact", integration_tests::api_url()))
                .bearer_auth(token)
                .json(&body);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, receipt) = send(change.clone(), Some("contact-1")).await;
    assert_eq!(status, 202, "{receipt}");
    assert!(schemas::compile("change-receipt.response.schema.json").unwrap().is_valid(&receipt), "{receipt}");
    assert_eq!(send(change.clone(), Some("contact-1")).await, (202, receipt.clone()), "a retry answers the same");

    let (_, _, customer) = call(Method::GET, "/v1/customers/1000003", None, Some(&bakery)).await;
    assert_eq!((customer["phone"].as_str(), customer["fax"].as_str()), (Some("+49 7472 2000"), None));
    assert_eq!(customer["notificationConsent"], false);
    assert_eq!(customer["pendingContactChange"], receipt["requestId"]);

    // Exactly one outbox entry for the request, its message valid against the event schema.
    let env = integration_tests::test_env();
    let clients = portal_platform::aws::Clients::from_sdk_config(
        &integration_tests::sdk_config(integration_tests::EMULATOR).await,
        None,
    );
    let outbox = clients.dynamo.scan().table_name(&env["TABLE_OUTBOX"]).send().await.unwrap().items.unwrap_or_default();
    let entries: Vec<_> = outbox
        .iter()
        .filter(|i| integration_tests::s(i, "requestId") == receipt["requestId"].as_str().unwrap())
        .collect();
    assert_eq!(entries.len(), 1);
    let message: Value = serde_json::from_str(&integration_tests::s(entries[0], "body")).unwrap();
    assert!(
        schemas::compile("events/customer-contact-data-changed.schema.json").unwrap().is_valid(&message),
        "{message}"
    );
    assert_eq!(message["payload"]["consent"]["given"], false);
    assert_eq!(message["payload"]["consent"]["channel"], "PORTAL");

    // Refusals: a bad number, nothing to change, another customer's number.
    let (status, problem) = send(serde_json::json!({"mobile": "0171-CALL-ME"}), None).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("VALIDATION_FAILED")));
    let (status, problem) = send(serde_json::json!({"mobile": "12 - 34 - 5"}), None).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("PHONE_INVALID")), "{problem}");
    let (status, _) = send(serde_json::json!({}), None).await;
    assert_eq!(status, 400);
    let (status, _, _) = call(
        Method::PATCH,
        "/v1/customers/1000002/contact",
        Some(&serde_json::json!({"phone": "+49 351 1234567"})),
        Some(&bakery),
    )
    .await;
    assert_eq!(status, 404);
}

/// The two remaining cells of the matrix: a login the CRM puts back to pending approval,
/// and one the CRM deletes. Their open sessions end with the status change, so every
/// secured operation answers them 401 like a caller without a session.
#[tokio::test]
async fn logins_set_pending_or_deleted_by_the_crm_reach_nothing() {
    let doc: Value = serde_json::from_str(include_str!("../../../schemas/openapi.json")).unwrap();
    let (sync, _, _) = integration_tests::served_sync().await;
    let mut tokens = Vec::new();
    for (login_id, status) in [("L-TESTPENDING", "AUSSTEHEND"), ("L-TESTDELETED", "GELÖSCHT")] {
        let token =
            login_with_password(login_id, &["1000002"], "an unused password", time::OffsetDateTime::now_utc()).await;
        assert_eq!(call(Method::GET, "/v1/customers/1000002", None, Some(&token)).await.0, 200, "open before");
        let message = serde_json::json!({
            "messageType": "crm.entity-changed", "messageId": format!("status-{login_id}"),
            "occurredAt": "2026-12-01T10:00:00Z", "entityType": "portalLogin", "version": 1,
            "entity": {
                "loginId": login_id, "username": login_id.to_lowercase(), "email": "test@example.org",
                "status": status, "partnerNumbers": [], "mustChangePassword": false,
                "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "createdAt": "2026-01-01T00:00:00Z"
            }
        });
        assert_eq!(sync.apply(&message.to_string()).await.unwrap(), portal_platform::sync::Outcome::Applied);
        tokens.push((status, token));
    }
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template
            .replace("{customerNumber}", "1000002")
            .replace("{accountNumber}", "800000002")
            .replace("{contractNumber}", "5000002")
            .replace("{meterNumber}", "1ESY1160012345")
            .replace("{documentId}", "D-2026-000201");
        for (method, op) in item.as_object().unwrap() {
            let optional = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r == &serde_json::json!({})));
            if op.get("security").is_none() || optional {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| serde_json::json!({}));
            for (status, token) in &tokens {
                let (code, _, problem) = call(method.clone(), &path, body.as_ref(), Some(token)).await;
                assert_eq!(
                    (code, problem["code"].as_str()),
                    (401, Some("UNAUTHENTICATED")),
                    "{status}: {method} {path}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2 * 20, "{checked} checks");
}

/// GDPR Art. 15/20: one document of everything held about the login and its customers, as
/// a download, only for a fresh login, and with no secret in it.
#[tokio::test]
async fn the_data_export_holds_everything_of_the_customer_and_no_secret() {
    let token = demo_session("L-0000001", &["1000002"], false).await;
    // A request of this customer, to find in the export with its activity.
    let message = serde_json::json!({"reason": "BILLING", "subject": "Frage zum Export", "text": "Guten Tag"});
    let (status, _, receipt) = call(Method::POST, "/v1/messages", Some(&message), Some(&token)).await;
    assert_eq!(status, 202, "{receipt}");

    let res = reqwest::Client::new()
        .get(format!("{}/v1/me/export", integration_tests::api_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment; filename=\"evi-portal-export-L-0000001"), "{disposition}");
    let text = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(schemas::compile("data-export.response.schema.json").unwrap().is_valid(&doc), "{doc}");
    assert_eq!(doc["login"]["username"], "jmueller");
    let customers = doc["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 1);
    let c = &customers[0];
    assert_eq!(c["customerNumber"], "1000002");
    assert_eq!(c["businessPartner"]["lastName"], "Müller-Lüdenscheidt");
    let numbers = |list: &str, key: &str| -> Vec<String> {
        c[list].as_array().unwrap().iter().map(|v| v[key].as_str().unwrap().to_owned()).collect()
    };
    assert!(numbers("contracts", "contractNumber").contains(&"5000003".to_owned()));
    assert_eq!(numbers("contractAccounts", "accountNumber").len(), 2, "800000002 and 800000003");
    assert!(numbers("contractAccounts", "accountNumber").contains(&"800000002".to_owned()));
    assert!(numbers("meters", "meterNumber").contains(&"7ELS8135012345".to_owned()));
    let gas = c["meters"].as_array().unwrap().iter().find(|m| m["meterNumber"] == "7ELS8135012345").unwrap();
    assert_eq!(gas["registers"][0]["code"], "SINGLE", "{gas}");
    assert!(!c["meterReadings"].as_array().unwrap().is_empty());
    assert!(!c["bankDetails"].as_array().unwrap().is_empty());
    let request_id = receipt["requestId"].as_str().unwrap();
    let request = c["requests"].as_array().unwrap().iter().find(|r| r["requestId"] == request_id).unwrap();
    assert_eq!(request["requestType"], "MESSAGE");
    assert!(["RECEIVED", "SUBMITTED"].contains(&request["status"].as_str().unwrap()), "{request}");
    assert!(c["activities"].as_array().unwrap().iter().any(|a| a.to_string().contains("Frage zum Export")), "{c}");
    assert_eq!(c["consents"][0]["type"], "NOTIFICATIONS");
    // No secret: neither the password hash, nor the session, nor a full IBAN.
    for secret in ["passwordHash", "$argon2id", "tokenHash", "sessionGeneration", token.as_str()] {
        assert!(!text.contains(secret), "{secret} in the export");
    }
    let full_iban = regex_lite_full_iban(&text);
    assert!(full_iban.is_none(), "a full IBAN in the export: {full_iban:?}");

    // A session older than the confirmation window signs in again first.
    let old = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let stale = integration_tests::demo_session_signed_in("L-0000001", &["1000002"], false, old).await;
    let (status, _, problem) = call(Method::GET, "/v1/me/export", None, Some(&stale)).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("REAUTHENTICATION_REQUIRED")));
    assert_eq!(call(Method::GET, "/v1/me/export", None, None).await.0, 401);
}

/// The first run of "DE" and 20 digits in a text: a German IBAN unmasked.
fn regex_lite_full_iban(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(21)).find_map(|i| {
        (bytes[i] == b'D' && bytes[i + 1] == b'E' && bytes[i + 2..i + 22].iter().all(u8::is_ascii_digit))
            .then(|| text[i..i + 22].to_owned())
    })
}
