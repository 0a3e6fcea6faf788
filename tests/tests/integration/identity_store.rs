//! Identity on the emulator with the real adapters: registration's write, claims and
//! message; session lifetimes against DynamoDB with a test clock.

use integration_tests::{Stack, isolated_stack_with_demo, mail_field, mails_to, s};
use portal_domain::clock::FixedClock;
use portal_domain::identification::Identification;
use portal_domain::identity::access::{AccessError, AccessService, LockoutPolicy};
use portal_domain::identity::account::AccountService;
use portal_domain::identity::credentials::{EmailAddress, Username};
use portal_domain::identity::registration::{Registration, RegistrationError, RegistrationPolicy, RegistrationService};
use portal_domain::identity::sessions::Caller;
use portal_domain::identity::sessions::{Access, AuthError, Authenticator, SessionPolicy, open_session};
use portal_domain::identity::{LoginStore, SessionStore, username_claim};
use portal_domain::ids::CustomerNumber;
use portal_domain::ports::RequestWriter;
use portal_platform::dynamo::{DynamoDirectory, DynamoLimiter};
use portal_platform::identity::{DynamoLogins, DynamoSessions, DynamoTokens, SesMailer};
use portal_platform::write_path::WritePath;
use secrecy::SecretString;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

type Service =
    RegistrationService<DynamoDirectory, DynamoLimiter, DynamoLogins, DynamoTokens, WritePath, SesMailer, FixedClock>;

fn registration(stack: &Stack, at: OffsetDateTime) -> Service {
    let live = stack.live();
    RegistrationService {
        directory: live.directory(),
        limiter: live.limiter(),
        logins: live.logins(),
        tokens: live.tokens(),
        writer: live.writer(),
        mailer: live.mailer(),
        clock: FixedClock(at),
        policy: RegistrationPolicy::default(),
    }
}

fn who(customer: &str, name: &str) -> Identification {
    Identification {
        customer: CustomerNumber::parse(customer).unwrap(),
        name: name.into(),
        source: Default::default(),
        bill: None,
    }
}

async fn register(
    service: &Service,
    customer: &str,
    name: &str,
    username: &str,
    email: &str,
) -> Result<serde_json::Value, RegistrationError> {
    let verified = service.verify(&who(customer, name)).await?;
    service
        .register(Registration {
            registration_token: verified.registration_token,
            username: Username::parse(username).unwrap(),
            email: EmailAddress::parse(email).unwrap(),
            personal: personal(),
            idempotency: None,
        })
        .await
}

const NOW: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn personal() -> portal_domain::identity::registration::PersonalData {
    portal_domain::identity::registration::PersonalData {
        salutation: "Frau".into(),
        phone: None,
        terms_of_use_version: "2026-01".into(),
        privacy_notice_version: "2026-03".into(),
    }
}

#[tokio::test]
async fn registration_writes_login_claims_activity_and_exactly_one_valid_message() {
    let stack = isolated_stack_with_demo().await;
    let t = &stack.config.tables;
    let service = registration(&stack, NOW);
    let email = format!("petra.{}@example.org", stack.account);
    let answer = register(&service, "1000005", "schulz", "pschulz", &email).await.unwrap();
    assert_eq!(answer["status"], "AKTIV");

    let login = stack.live().logins().by_claim(&username_claim("pschulz")).await.unwrap().unwrap();
    assert!(login.must_change_password);
    assert!(login.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_eq!(login.password_expires_at, Some(NOW + Duration::hours(72)));
    let activities = stack.items(&t.activities).await;
    assert_eq!(activities.iter().map(|a| s(a, "ownerKey")).collect::<Vec<_>>(), ["BP#1000005"]);

    let messages = stack.drain_queue().await;
    assert_eq!(messages.len(), 1);
    let schema = portal_platform::schemas::compile("events/portal-login-registered.schema.json").unwrap();
    assert!(schema.is_valid(&messages[0]), "{}", messages[0]);
    // The personal-data step travels with it, and stays on the registration record.
    let accepted = serde_json::json!({"termsOfUse": "2026-01", "privacyNotice": "2026-03", "acceptedAt": "2026-12-01T09:00:00.000Z"});
    assert_eq!(
        (&messages[0]["payload"]["salutation"], &messages[0]["payload"]["acceptedTerms"]),
        (&serde_json::json!("Frau"), &accepted)
    );
    let record = stack.items(&t.portal_login_requests).await.pop().unwrap();
    assert_eq!(s(&record, "salutation"), "Frau");
    // The initial password is in the mail, never in the message.
    let mail = mails_to(&email).await.pop().expect("initial password mail");
    let password = mail_field(&mail, "Initialpasswort:").unwrap();
    assert_eq!(password.len(), 16);
    assert!(!messages[0].to_string().contains(&password));

    // The customer is registered now; the username is taken.
    assert!(matches!(service.verify(&who("1000005", "Schulz")).await, Err(RegistrationError::AlreadyRegistered)));
    let claims_before = stack.count(&t.login_claims).await;
    let taken = register(&service, "1000001", "Mustermann", "PSchulz", "erika@example.org").await.unwrap_err();
    assert!(matches!(taken, RegistrationError::UsernameTaken), "{taken:?}");
    assert_eq!(stack.count(&t.login_claims).await, claims_before);
    assert!(stack.drain_queue().await.is_empty());
}

async fn attempt(
    service: &Service,
    token: &secrecy::SecretString,
    name: &str,
) -> Result<serde_json::Value, RegistrationError> {
    let registration = Registration {
        registration_token: token.clone(),
        username: Username::parse(name).unwrap(),
        email: EmailAddress::parse("someone@example.org").unwrap(),
        personal: personal(),
        idempotency: None,
    };
    service.register(registration).await
}

#[tokio::test]
async fn a_registration_token_is_single_use_and_a_taken_username_cancels_the_whole_write() {
    let stack = isolated_stack_with_demo().await;
    let t = &stack.config.tables;
    let service = registration(&stack, NOW);
    let erika = service.verify(&who("1000001", "Mustermann")).await.unwrap();
    let petra = service.verify(&who("1000005", "Schulz")).await.unwrap();
    attempt(&service, &erika.registration_token, "erika.m").await.unwrap();
    stack.drain_queue().await;
    // Used up.
    let again = attempt(&service, &erika.registration_token, "erika.other").await;
    assert!(matches!(again, Err(RegistrationError::InvalidToken)), "{again:?}");
    // Expired.
    let late = registration(&stack, NOW + Duration::hours(1));
    let expired = attempt(&late, &petra.registration_token, "petra.s").await;
    assert!(matches!(expired, Err(RegistrationError::InvalidToken)), "{expired:?}");

    // The emulator does not isolate concurrent transactions, so the race for a username is
    // tested at its last line of defence: a transaction whose claim is taken writes nothing.
    let logins_before = stack.count(&t.portal_logins).await;
    let activities_before = stack.count(&t.activities).await;
    let login_id = portal_domain::identity::LoginRecord::new_login_id();
    let request = portal_domain::requests::CustomerRequest {
        request_id: portal_domain::ids::RequestId::new_random(),
        kind: portal_domain::requests::RequestKind::PortalRegistration,
        customer: Some(CustomerNumber::parse("1000005").unwrap()),
        channel: portal_domain::requests::Channel::Portal,
        submitted_at: NOW,
        record: serde_json::json!({}),
        activities: vec![portal_domain::requests::Activity {
            owner: portal_domain::requests::ActivityOwner::Customer(CustomerNumber::parse("1000005").unwrap()),
            activity_type: "PORTAL_REGISTRATION",
            subject: "x".into(),
            text: None,
            route_to: None,
        }],
        mirror_updates: vec![
            portal_domain::requests::MirrorUpdate::Claim { key: username_claim("erika.m"), login_id: login_id.clone() },
            portal_domain::requests::MirrorUpdate::Claim { key: "PARTNER#1000005".into(), login_id },
        ],
        payload: serde_json::json!({}),
        idempotency: None,
        answer: serde_json::json!({}),
    };
    let result = stack.live().writer().commit(request).await;
    assert!(
        matches!(&result, Err(portal_domain::requests::WriteError::ClaimTaken(k)) if k == "USERNAME#erika.m"),
        "{result:?}"
    );
    assert_eq!(stack.count(&t.portal_logins).await, logins_before);
    assert_eq!(stack.count(&t.activities).await, activities_before);
    assert!(stack.live().logins().by_claim("PARTNER#1000005").await.unwrap().is_none());
    assert!(stack.drain_queue().await.is_empty());
}

#[tokio::test]
async fn sessions_end_when_idle_or_too_old_by_the_test_clock() {
    let stack = isolated_stack_with_demo().await;
    let sessions = DynamoSessions::new(stack.clients.dynamo.clone(), &stack.config.tables);
    let login = stack.live().logins().by_claim(&username_claim("jmueller")).await.unwrap().unwrap();
    let policy = SessionPolicy::default();
    let auth =
        |at| Authenticator { sessions: sessions.clone(), logins: stack.live().logins(), clock: FixedClock(at), policy };

    let (token, record) = open_session(&login, NOW, &policy);
    sessions.create(&record).await.unwrap();
    assert!(auth(NOW + Duration::minutes(29)).authenticate(Some(&token), Access::Regular).await.is_ok());
    // Touched at +29 min, so +58 min is within the idle timeout; +89 min is not.
    assert!(auth(NOW + Duration::minutes(58)).authenticate(Some(&token), Access::Regular).await.is_ok());
    assert!(matches!(
        auth(NOW + Duration::minutes(89)).authenticate(Some(&token), Access::Regular).await,
        Err(AuthError::Invalid)
    ));
    assert!(sessions.get(&record.token_hash).await.unwrap().is_none(), "an expired session is removed");

    let (token, record) = open_session(&login, NOW, &policy);
    sessions.create(&record).await.unwrap();
    let mut at = NOW;
    while at < NOW + Duration::hours(12) - Duration::minutes(20) {
        at += Duration::minutes(20);
        assert!(auth(at).authenticate(Some(&token), Access::Regular).await.is_ok(), "refused at {at}");
    }
    at += Duration::minutes(21);
    assert!(matches!(auth(at).authenticate(Some(&token), Access::Regular).await, Err(AuthError::Invalid)));

    // Only a hash is stored.
    let stored = stack.items(&stack.config.tables.sessions).await;
    assert!(stored.iter().all(|i| !format!("{i:?}").contains(secrecy::ExposeSecret::expose_secret(&token))));
}

fn access(
    stack: &Stack,
    at: OffsetDateTime,
) -> AccessService<
    DynamoLogins,
    DynamoSessions,
    DynamoTokens,
    SesMailer,
    portal_platform::identity::DynamoThrottle,
    portal_platform::dynamo::DynamoLimiter,
    FixedClock,
> {
    let live = stack.live();
    AccessService {
        logins: live.logins(),
        sessions: live.sessions(),
        tokens: live.tokens(),
        mailer: live.mailer(),
        throttle: live.throttle(),
        clock: FixedClock(at),
        session_policy: SessionPolicy::default(),
        lockout: LockoutPolicy::default(),
        limiter: live.limiter(),
        budgets: Default::default(),
    }
}

fn password(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

#[tokio::test]
async fn an_initial_password_expires_after_72_hours_and_a_pending_login_cannot_log_in() {
    let stack = isolated_stack_with_demo().await;
    let mut service = registration(&stack, NOW);
    service.policy.requires_approval = true;
    let email = format!("petra.{}@example.org", stack.account);
    let answer = register(&service, "1000005", "Schulz", "pschulz", &email).await.unwrap();
    assert_eq!(answer["status"], "AUSSTEHEND");
    // While it waits, no password: the mail says the registration is being checked.
    let waiting = mails_to(&email).await;
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].contains("wird geprüft") && mail_field(&waiting[0], "Initialpasswort:").is_none());

    // The CRM approves it: the initial password comes now, valid for 72 hours from now.
    let login_id = answer["loginId"].as_str().unwrap().to_owned();
    let entity = |status: &str, version: u64| {
        serde_json::json!({
            "messageType": "crm.entity-changed", "messageId": format!("approve-{version}"),
            "occurredAt": "2026-12-01T10:00:00Z", "entityType": "portalLogin", "version": version,
            "entity": {
                "loginId": login_id, "username": "pschulz", "email": email, "status": status,
                "partnerNumbers": ["1000005"], "mustChangePassword": true,
                "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "createdAt": "2026-12-01T09:00:00Z"
            }
        })
        .to_string()
    };
    let approved_at = OffsetDateTime::now_utc();
    assert_eq!(stack.sync().apply(&entity("AKTIV", 1)).await.unwrap(), portal_platform::sync::Outcome::Applied);
    let initial = mail_field(&mails_to(&email).await.pop().unwrap(), "Initialpasswort:").expect("sent on approval");
    assert!(
        access(&stack, approved_at + Duration::hours(71))
            .login("pschulz", &password(&initial), &Default::default())
            .await
            .is_ok()
    );
    let expired = access(&stack, approved_at + Duration::hours(73))
        .login("pschulz", &password(&initial), &Default::default())
        .await;
    assert!(matches!(expired, Err(AccessError::InitialPasswordExpired)), "{:?}", expired.err());

    // Set back to pending by the CRM: the right password is told that the login waits for
    // approval; a wrong one gets the generic answer (nothing is told without the password).
    assert_eq!(stack.sync().apply(&entity("AUSSTEHEND", 2)).await.unwrap(), portal_platform::sync::Outcome::Applied);
    let refused = access(&stack, approved_at + Duration::hours(1))
        .login("pschulz", &password(&initial), &Default::default())
        .await;
    assert!(matches!(refused, Err(AccessError::PendingApproval)), "{:?}", refused.err());
    let wrong = access(&stack, approved_at + Duration::hours(1))
        .login("pschulz", &password("Falsch-2026-xyz"), &Default::default())
        .await;
    assert!(matches!(wrong, Err(AccessError::InvalidCredentials)), "{:?}", wrong.err());
}

fn account(
    stack: &Stack,
) -> AccountService<DynamoDirectory, DynamoLimiter, DynamoLogins, DynamoSessions, WritePath, SesMailer, FixedClock> {
    let live = stack.live();
    AccountService {
        directory: live.directory(),
        limiter: live.limiter(),
        logins: live.logins(),
        sessions: live.sessions(),
        writer: live.writer(),
        mailer: live.mailer(),
        clock: FixedClock(NOW),
        policy: Default::default(),
    }
}

async fn caller(stack: &Stack, token: &SecretString) -> Caller {
    Authenticator {
        sessions: stack.live().sessions(),
        logins: stack.live().logins(),
        clock: FixedClock(NOW),
        policy: SessionPolicy::default(),
    }
    .authenticate(Some(token), Access::Regular)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_deleted_account_reactivated_by_the_crm_logs_in_with_the_password_its_customer_set() {
    let stack = isolated_stack_with_demo().await;
    let access = access(&stack, NOW);
    let grant = access.login("jmueller", &password("Demo-Passwort-2026"), &Default::default()).await.unwrap();
    let me = caller(&stack, &grant.token).await;
    let changed = password("Elbblick und Großer Garten");
    let grant = access.change_password(&me, &password("Demo-Passwort-2026"), &changed).await.unwrap();
    account(&stack).delete(&caller(&stack, &grant.token).await).await.unwrap();
    assert!(matches!(
        access.login("jmueller", &changed, &Default::default()).await,
        Err(AccessError::InvalidCredentials)
    ));
    assert!(stack.live().logins().by_claim("PARTNER#1000002").await.unwrap().is_none(), "the customer number is free");

    // EVI sets the login AKTIV again (the export says so).
    portal_platform::import::import_export(&stack.clients, &stack.config, integration_tests::DEMO_EXPORT)
        .await
        .unwrap();
    assert!(
        access.login("jmueller", &changed, &Default::default()).await.is_ok(),
        "the password set in the portal works again"
    );
    assert!(matches!(
        access.login("jmueller", &password("Demo-Passwort-2026"), &Default::default()).await,
        Err(AccessError::InvalidCredentials)
    ));
    let holder = stack.live().logins().by_claim("PARTNER#1000002").await.unwrap().unwrap();
    assert_eq!(holder.login_id.as_str(), "L-0000001");
}

#[tokio::test]
async fn the_crm_locking_a_login_ends_its_sessions() {
    let stack = isolated_stack_with_demo().await;
    let grant = access(&stack, NOW)
        .login("baeckerei.schmidt", &password("Demo-Passwort-2026"), &Default::default())
        .await
        .unwrap();
    let me = caller(&stack, &grant.token).await;
    let mut export: serde_json::Value = serde_json::from_str(integration_tests::DEMO_EXPORT).unwrap();
    export["portalLogins"][2]["status"] = "GESPERRT".into();
    portal_platform::import::import_export(&stack.clients, &stack.config, &export.to_string()).await.unwrap();
    assert!(stack.live().sessions().get(&me.token_hash).await.unwrap().is_none());
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_too() {
    let stack = isolated_stack_with_demo().await;
    let access = access(&stack, NOW);
    let grant = access.login("jmueller", &password("Demo-Passwort-2026"), &Default::default()).await.unwrap();
    let me = caller(&stack, &grant.token).await;
    let new = password("Elbblick und Großer Garten");
    for _ in 0..5 {
        let wrong = access.change_password(&me, &password("a wrong guess here"), &new).await;
        assert!(matches!(wrong, Err(AccessError::WrongCurrentPassword)), "{:?}", wrong.err());
    }
    let locked = access.change_password(&me, &password("Demo-Passwort-2026"), &new).await;
    assert!(matches!(locked, Err(AccessError::TooManyAttempts { .. })), "{:?}", locked.err());
}

#[tokio::test]
async fn adding_a_customer_number_and_deleting_the_account_each_record_an_activity_and_one_valid_message() {
    let stack = isolated_stack_with_demo().await;
    let live = stack.live();
    let service = account(&stack);
    let grant =
        access(&stack, NOW).login("jmueller", &password("Demo-Passwort-2026"), &Default::default()).await.unwrap();
    let me = caller(&stack, &grant.token).await;
    let added = service.add_customer_number(&me, &who("1000005", "Schulz")).await.unwrap();
    assert_eq!(added.customer_numbers.iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["1000002", "1000005"]);
    // The open session sees the new customer number at once.
    assert_eq!(caller(&stack, &grant.token).await.partner_numbers, added.customer_numbers);

    service.delete(&Caller { partner_numbers: added.customer_numbers.clone(), ..me.clone() }).await.unwrap();
    let messages = stack.drain_queue().await;
    let types: Vec<&str> = messages.iter().map(|m| m["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["portal-login.customer-number-added", "portal-login.deleted"]);
    for (message, schema) in messages
        .iter()
        .zip(["events/portal-login-customer-number-added.schema.json", "events/portal-login-deleted.schema.json"])
    {
        assert!(portal_platform::schemas::compile(schema).unwrap().is_valid(message), "{message}");
    }
    let mut owners: Vec<String> =
        stack.items(&stack.config.tables.activities).await.iter().map(|a| s(a, "ownerKey")).collect();
    owners.sort();
    assert_eq!(owners, ["BP#1000002", "BP#1000005", "BP#1000005"]);
    assert!(live.sessions().get(&me.token_hash).await.unwrap().is_none(), "deletion ends the session");
    let login = live.logins().get(&me.login_id).await.unwrap().unwrap();
    assert_eq!(login.status, portal_domain::entities::LoginStatus::Deleted);
}
