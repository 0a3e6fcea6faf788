//! Identity end to end: HTTP to the served functions on the test stack with the demo data.

use integration_tests::{call, mail_field, mails_to};
use reqwest::Method;
use serde_json::{Value, json};

async fn login(username: &str, password: &str) -> (u16, Value) {
    let (status, _, body) =
        call(Method::POST, "/v1/sessions", Some(&json!({"username": username, "password": password})), None).await;
    (status, body)
}

fn token(body: &Value) -> String {
    body["token"].as_str().unwrap_or_else(|| panic!("no token in {body}")).to_owned()
}

#[tokio::test]
async fn petra_registers_changes_her_initial_password_and_manages_her_account() {
    // Step 1: customer number and name.
    let (status, _, verified) = call(
        Method::POST,
        "/v1/registrations/verify",
        Some(&json!({"customerNumber": "1000005", "lastName": " SCHULZ "})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    let schema = portal_platform::schemas::compile("registration-verification.response.schema.json").unwrap();
    assert!(schema.is_valid(&verified));

    // Steps 2 and 3: login data, confirmed.
    let registration = json!({
        "registrationToken": verified["registrationToken"], "username": "pschulz", "email": "petra.schulz@example.org",
        "salutation": "Frau", "acceptedTerms": {"termsOfUse": "2026-01", "privacyNotice": "2026-03"},
    });
    let (status, _, created) = call(Method::POST, "/v1/registrations", Some(&registration), None).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["status"].as_str(), created["username"].as_str()), (Some("AKTIV"), Some("pschulz")));
    assert!(portal_platform::schemas::compile("registration.response.schema.json").unwrap().is_valid(&created));
    // The personal-data step is stored on the registration record: the versions she accepted.
    let records = integration_tests::stack_items("TABLE_PORTAL_LOGIN_REQUESTS").await;
    let record = records
        .iter()
        .find(|i| {
            integration_tests::s(i, "requestType") == "PORTAL_REGISTRATION"
                && integration_tests::s(i, "username") == "pschulz"
        })
        .expect("the registration record");
    let terms = record["acceptedTerms"].as_m().unwrap();
    assert_eq!(
        (terms["termsOfUse"].as_s().unwrap().as_str(), terms["privacyNotice"].as_s().unwrap().as_str()),
        ("2026-01", "2026-03")
    );
    assert!(terms.contains_key("acceptedAt"));
    assert_eq!(integration_tests::s(record, "salutation"), "Frau");

    // The initial password comes by mail.
    let mail = mails_to("petra.schulz@example.org").await.pop().expect("a mail to Petra");
    let initial = mail_field(&mail, "Initialpasswort:").expect("initial password in the mail");

    // Logged in, everything but the password change answers 403.
    let (status, session) = login("PSchulz", &initial).await;
    assert_eq!((status, session["mustChangePassword"].as_bool()), (201, Some(true)), "{session}");
    let first = token(&session);
    let (status, _, refused) = call(Method::GET, "/v1/me", None, Some(&first)).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("PASSWORD_CHANGE_REQUIRED")));
    let (status, _, refused) = call(Method::GET, "/v1/me/dashboard", None, Some(&first)).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("PASSWORD_CHANGE_REQUIRED")));

    // A weak password is refused with its rule; a good one is taken, and every old session ends.
    let weak = json!({"currentPassword": initial, "newPassword": "pschulz"});
    let (status, _, problem) = call(Method::PUT, "/v1/me/password", Some(&weak), Some(&first)).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("PASSWORD_TOO_SHORT")));
    let new_password = "Wärmepumpe im Keller 7";
    let change = json!({"currentPassword": initial, "newPassword": new_password});
    let (status, _, changed) = call(Method::PUT, "/v1/me/password", Some(&change), Some(&first)).await;
    assert_eq!(status, 200, "{changed}");
    let second = token(&changed);
    assert_eq!(call(Method::GET, "/v1/me", None, Some(&first)).await.0, 401);
    assert_eq!(login("pschulz", &initial).await.0, 401);

    let (status, _, me) = call(Method::GET, "/v1/me", None, Some(&second)).await;
    assert_eq!((status, &me["customerNumbers"]), (200, &json!(["1000005"])), "{me}");
    assert!(portal_platform::schemas::compile("account.response.schema.json").unwrap().is_valid(&me));

    // The dashboard: her partner, account, contract and the meter near its rollover.
    let dashboard_schema = portal_platform::schemas::compile("dashboard.response.schema.json").unwrap();
    let (status, _, dashboard) = call(Method::GET, "/v1/me/dashboard", None, Some(&second)).await;
    assert_eq!(status, 200, "{dashboard}");
    assert!(dashboard_schema.is_valid(&dashboard), "{dashboard}");
    let meters = |d: &Value| -> Vec<String> {
        d["partners"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["contractAccounts"].as_array().unwrap().iter())
            .flat_map(|a| a["contracts"].as_array().unwrap().iter())
            .flat_map(|c| c["meters"].as_array().unwrap().iter())
            .map(|m| m["meterNumber"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(meters(&dashboard), ["1EBZ0012398765"]);

    // A further customer number, verified like a registration.
    let (status, _, wrong) = call(
        Method::POST,
        "/v1/me/customer-numbers",
        Some(&json!({"customerNumber": "1000001", "lastName": "Musterfrau"})),
        Some(&second),
    )
    .await;
    assert_eq!((status, wrong["code"].as_str()), (404, Some("CUSTOMER_NOT_FOUND")));
    let (status, _, me) = call(
        Method::POST,
        "/v1/me/customer-numbers",
        Some(&json!({"customerNumber": "1000001", "lastName": "Mustermann"})),
        Some(&second),
    )
    .await;
    assert_eq!((status, &me["customerNumbers"]), (200, &json!(["1000005", "1000001"])), "{me}");
    // The dashboard spans both customers now, in the same session.
    let (_, _, dashboard) = call(Method::GET, "/v1/me/dashboard", None, Some(&second)).await;
    assert!(dashboard_schema.is_valid(&dashboard), "{dashboard}");
    assert_eq!(meters(&dashboard), ["1EBZ0012398765", "1EMH0012345678"]);
    let (status, _, taken) = call(
        Method::POST,
        "/v1/me/customer-numbers",
        Some(&json!({"customerNumber": "1000002", "lastName": "Müller-Lüdenscheidt"})),
        Some(&second),
    )
    .await;
    assert_eq!((status, taken["code"].as_str()), (409, Some("ALREADY_REGISTERED")));

    // Logout ends just that session.
    let (_, spare) = login("pschulz", new_password).await;
    assert_eq!(call(Method::DELETE, "/v1/sessions/current", None, Some(&token(&spare))).await.0, 204);
    assert_eq!(call(Method::GET, "/v1/me", None, Some(&token(&spare))).await.0, 401);
    assert_eq!(call(Method::GET, "/v1/me", None, Some(&second)).await.0, 200);

    // Deleting the account ends the open session, and login is refused like for anyone unknown.
    let (third_status, third) = login("pschulz", new_password).await;
    assert_eq!(third_status, 201);
    assert_eq!(call(Method::DELETE, "/v1/me", None, Some(&second)).await.0, 204);
    assert_eq!(call(Method::GET, "/v1/me", None, Some(&token(&third))).await.0, 401);
    let (status, refused) = login("pschulz", new_password).await;
    assert_eq!((status, refused["code"].as_str()), (401, Some("INVALID_CREDENTIALS")));

    // Nothing secret reached the functions' logs.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    if let Ok(path) = std::env::var("PORTAL_API_LOG") {
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(log.contains("/v1/me"), "the log at {path} is not the API's");
        for canary in [
            initial.as_str(),
            new_password,
            &first,
            &second,
            &token(&third),
            verified["registrationToken"].as_str().unwrap(),
        ] {
            assert!(!log.contains(canary), "a secret is in the log");
        }
        assert!(!log.contains("petra.schulz@example.org"), "an e-mail address is in the log");
    }
}

#[tokio::test]
async fn a_deleted_login_is_refused_exactly_like_an_unknown_user() {
    let (deleted_status, deleted) = login("kweber", "Demo-Passwort-2026").await;
    let (unknown_status, unknown) = login("nobody.here", "Demo-Passwort-2026").await;
    let (wrong_status, wrong) = login("kweber", "not the password").await;
    for (status, body) in [(deleted_status, &deleted), (unknown_status, &unknown), (wrong_status, &wrong)] {
        assert_eq!(
            (status, body["code"].as_str(), &body["detail"]),
            (401, Some("INVALID_CREDENTIALS"), &unknown["detail"])
        );
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_account_for_a_growing_time() {
    for _ in 0..5 {
        assert_eq!(login("baeckerei.schmidt", "falsches passwort").await.0, 401);
    }
    // Five failures: locked for a while now, even for the right password.
    let (status, body) = login("baeckerei.schmidt", "Demo-Passwort-2026").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("TOO_MANY_ATTEMPTS")), "{body}");
}

#[tokio::test]
async fn a_password_is_reset_by_a_mailed_single_use_code() {
    let earlier = integration_tests::reset_mails_to("j.mueller@example.org", 0).await.len();
    let (status, _, known) =
        call(Method::POST, "/v1/password-resets", Some(&json!({"usernameOrEmail": "jmueller"})), None).await;
    let (_, _, unknown) =
        call(Method::POST, "/v1/password-resets", Some(&json!({"usernameOrEmail": "nobody@example.org"})), None).await;
    assert_eq!((status, &known), (202, &unknown), "the answer does not tell whether the login exists");

    let (_, before) = login("jmueller", "Demo-Passwort-2026").await;
    let open_session = token(&before);
    let mail =
        integration_tests::reset_mails_to("j.mueller@example.org", earlier + 1).await.pop().expect("a reset mail");
    let code = mail_field(&mail, "Ihr Code zum Zurücksetzen:").expect("a code in the mail");
    // A refused password does not use the code up.
    let (status, _, weak) = call(
        Method::POST,
        "/v1/password-resets/confirm",
        Some(&json!({"token": code, "newPassword": "passwort1234"})),
        None,
    )
    .await;
    assert_eq!((status, weak["code"].as_str()), (422, Some("PASSWORD_TOO_COMMON")));
    let new_password = "Elbblick und Großer Garten";
    let confirm = json!({"token": code, "newPassword": new_password});
    assert_eq!(call(Method::POST, "/v1/password-resets/confirm", Some(&confirm), None).await.0, 204);
    assert_eq!(call(Method::GET, "/v1/me", None, Some(&open_session)).await.0, 401, "a reset ends every session");
    assert_eq!(login("jmueller", "Demo-Passwort-2026").await.0, 401);
    assert_eq!(login("jmueller", new_password).await.0, 201);
    let (status, _, used) = call(Method::POST, "/v1/password-resets/confirm", Some(&confirm), None).await;
    assert_eq!((status, used["code"].as_str()), (422, Some("RESET_TOKEN_INVALID")));
}

/// Repeated resets cannot flood a mailbox: three requests per name and hour, then 429 with
/// `Retry-After`, for a known name as for an unknown one (the answer tells nothing else).
/// Before, every request of a known name mailed a new code.
#[tokio::test]
async fn repeated_reset_requests_for_one_name_are_limited() {
    let name = format!("niemand-{}@example.org", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let body = json!({"usernameOrEmail": name});
    for _ in 0..3 {
        assert_eq!(call(Method::POST, "/v1/password-resets", Some(&body), None).await.0, 202);
    }
    let url = format!("{}/v1/password-resets", integration_tests::api_url());
    let limited = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    let seconds: i64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&seconds), "until the hour ends: {seconds}");
    let problem: Value = limited.json().await.unwrap();
    assert_eq!(problem["code"], "TOO_MANY_ATTEMPTS", "{problem}");
    // The name in another case and with spaces is the same name.
    let same = json!({"usernameOrEmail": format!("  {}", name.to_uppercase())});
    assert_eq!(call(Method::POST, "/v1/password-resets", Some(&same), None).await.0, 429);
}

/// Deleting the login is confirmed like a sensitive change: a session whose login is older
/// than ten minutes (left open on a shared computer) needs the current password; a wrong one
/// is refused; the right one deletes the login and ends its sessions.
#[tokio::test]
async fn deleting_the_login_needs_the_current_password_after_a_while() {
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::minutes(30);
    // Weber's customer number: no other test of the served stack claims it (deleting releases
    // the login's claims, and a claim another test's registration holds would conflict).
    let session =
        integration_tests::login_with_password("L-TESTDELETE", &["1000004"], "Loeschen-Passwort-2026", long_ago).await;

    let (status, _, problem) = call(Method::DELETE, "/v1/me", None, Some(&session)).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("REAUTHENTICATION_REQUIRED")), "{problem}");
    let wrong = json!({"currentPassword": "Falsches-Passwort-1"});
    let (status, _, problem) = call(Method::DELETE, "/v1/me", Some(&wrong), Some(&session)).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("CURRENT_PASSWORD_WRONG")), "{problem}");
    assert_eq!(call(Method::GET, "/v1/me", None, Some(&session)).await.0, 200, "still there");
    let right = json!({"currentPassword": "Loeschen-Passwort-2026"});
    assert_eq!(call(Method::DELETE, "/v1/me", Some(&right), Some(&session)).await.0, 204);
    assert_eq!(call(Method::GET, "/v1/me", None, Some(&session)).await.0, 401, "its sessions ended");
}

/// Revocation is immediate: a session opened a moment before a password change made in
/// another session is refused right after the change has answered, and a customer number
/// the CRM takes from the login is gone from every open session with the next request.
#[tokio::test]
async fn a_session_is_refused_right_after_a_password_change_in_another_session() {
    let now = time::OffsetDateTime::now_utc();
    let password = "Widerruf-Passwort-2026";
    let phone = integration_tests::login_with_password("L-TESTREVOKE", &["1000005"], password, now).await;
    let laptop = integration_tests::login_with_password("L-TESTREVOKE", &["1000005"], password, now).await;
    assert_eq!(call(Method::GET, "/v1/customers/1000005", None, Some(&phone)).await.0, 200, "open before");

    let change = json!({"currentPassword": password, "newPassword": "Neues Widerruf-Passwort 27"});
    let (status, _, changed) = call(Method::PUT, "/v1/me/password", Some(&change), Some(&laptop)).await;
    assert_eq!(status, 200, "{changed}");
    let (status, _, problem) = call(Method::GET, "/v1/customers/1000005", None, Some(&phone)).await;
    assert_eq!((status, problem["code"].as_str()), (401, Some("UNAUTHENTICATED")), "the other session");
    assert_eq!(call(Method::GET, "/v1/me", None, Some(&laptop)).await.0, 401, "the changing session's old token");
    let renewed = token(&changed);
    assert_eq!(call(Method::GET, "/v1/customers/1000005", None, Some(&renewed)).await.0, 200);

    // The CRM takes the customer number from the login: the open session loses it at once.
    let (sync, _, _) = integration_tests::served_sync().await;
    let message = json!({
        "messageType": "crm.entity-changed", "messageId": "revoke-L-TESTREVOKE", "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "portalLogin", "version": 1,
        "entity": {
            "loginId": "L-TESTREVOKE", "username": "l-testrevoke", "email": "l-testrevoke@example.org",
            "status": "AKTIV", "partnerNumbers": [], "mustChangePassword": false,
            "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "createdAt": "2026-01-01T00:00:00Z"
        }
    });
    assert_eq!(sync.apply(&message.to_string()).await.unwrap(), portal_platform::sync::Outcome::Applied);
    assert_eq!(call(Method::GET, "/v1/customers/1000005", None, Some(&renewed)).await.0, 404, "no longer his");
    let (_, _, me) = call(Method::GET, "/v1/me", None, Some(&renewed)).await;
    assert_eq!(me["customerNumbers"], json!([]), "{me}");
}
