//! What a registration must prove, through the registration function's handler with API
//! Gateway's events against the emulator's tables, for each `RegistrationProof`: customer
//! number and surname are printed on every bill, so whoever registers with them, the customer
//! hears of it at the address the CRM has, and a deployment can ask for more.

use integration_tests::{answer_of, apigw_post, isolated_stack_with_demo, mail_field, mails_to};
use portal_domain::clock::SystemClock;
use portal_domain::identification::RegistrationProof;
use portal_domain::identity::registration::{RegistrationPolicy, RegistrationService};
use registration::api::Api;
use serde_json::{Value, json};

async fn api(stack: &integration_tests::Stack, proof: RegistrationProof) -> Api {
    let live = stack.live();
    Api::new(RegistrationService {
        directory: live.directory(),
        limiter: live.limiter(),
        logins: live.logins(),
        tokens: live.tokens(),
        writer: live.writer(),
        mailer: live.mailer(),
        clock: SystemClock,
        policy: RegistrationPolicy {
            proof,
            customer_service: "unseren Kundenservice unter 0800 4711".into(),
            ..RegistrationPolicy::default()
        },
    })
    .unwrap()
}

async fn post(api: &Api, path: &str, body: Value) -> (u16, Option<String>, Value) {
    answer_of(api.handle(apigw_post(path, &body, "203.0.113.20")).await.unwrap())
}

/// Verifies the identification and registers with `email`: the registration's answer.
async fn register(api: &Api, identification: Value, username: &str, email: &str) -> (u16, Option<String>, Value) {
    let (status, code, verified) = post(api, "/v1/registrations/verify", identification).await;
    assert_eq!((status, code), (200, None), "{verified}");
    let body = json!({
        "registrationToken": verified["registrationToken"], "username": username, "email": email,
        "salutation": "Frau", "phone": "+49 351 4711",
        "acceptedTerms": {"termsOfUse": "2026-01", "privacyNotice": "2026-03"},
    });
    post(api, "/v1/registrations", body).await
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The attack: customer number and surname from a bill, and the attacker's own address.
/// Before, the login was created and only the attacker heard of it; now the customer is told
/// at the CRM's address, with the username and whom to call.
#[tokio::test]
async fn a_registration_with_a_strangers_e_mail_is_told_to_the_crms_address() {
    let stack = isolated_stack_with_demo().await;
    let api = api(&stack, RegistrationProof::Name).await;
    let (username, email) = (unique("fremd"), format!("{}@example.net", unique("angreifer")));
    let petra = json!({"customerNumber": "1000005", "lastName": "Schulz"});
    let (status, _, login) = register(&api, petra, &username, &email).await;
    assert_eq!((status, login["status"].as_str()), (201, Some("AKTIV")), "{login}");

    let notices: Vec<String> =
        mails_to("petra.schulz@example.org").await.into_iter().filter(|m| m.contains(&username)).collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("Kundennummer 1000005 ein Zugang zum Kundenportal registriert"), "{}", notices[0]);
    assert!(notices[0].contains("unseren Kundenservice unter 0800 4711"), "{}", notices[0]);
    assert!(mail_field(&notices[0], "Initialpasswort:").is_none(), "the password goes to the registrant only");
    assert_eq!(mails_to(&email).await.len(), 1, "the initial password");
}

/// With `METER_OR_ACCOUNT`, customer number and surname are not enough: a meter or contract
/// account number of that customer's bill is asked for (422), another customer's is a failed
/// identification (404).
#[tokio::test]
async fn with_meter_or_account_a_registration_needs_a_number_from_the_customers_bill() {
    let stack = isolated_stack_with_demo().await;
    let api = api(&stack, RegistrationProof::MeterOrAccount).await;
    let verify = |extra: Value| {
        let mut body = json!({"customerNumber": "1000005", "lastName": "Schulz"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, code, problem) = post(&api, "/v1/registrations/verify", verify(json!({}))).await;
    assert_eq!((status, code.as_deref()), (422, Some("BILL_NUMBER_REQUIRED")), "{problem}");
    for erikas in [json!({"meterNumber": "1EMH0012345678"}), json!({"accountNumber": "800000001"})] {
        let (status, code, _) = post(&api, "/v1/registrations/verify", verify(erikas)).await;
        assert_eq!((status, code.as_deref()), (404, Some("CUSTOMER_NOT_FOUND")));
    }
    for own in [json!({"meterNumber": "1EBZ0012398765"}), json!({"accountNumber": "800000006"})] {
        let (status, _, verified) = post(&api, "/v1/registrations/verify", verify(own)).await;
        assert_eq!(status, 200, "{verified}");
    }
}

/// With `CRM_EMAIL`, a login whose address is not the CRM's waits for the CRM's approval; the
/// CRM's address, typed in any case, makes an active login.
#[tokio::test]
async fn with_crm_email_a_strangers_address_waits_for_the_crm() {
    let stack = isolated_stack_with_demo().await;
    let api = api(&stack, RegistrationProof::CrmEmail).await;
    let petra = json!({"customerNumber": "1000005", "lastName": "Schulz"});
    let stranger = format!("{}@example.net", unique("angreifer"));
    let (status, _, login) = register(&api, petra, &unique("fremd"), &stranger).await;
    assert_eq!((status, login["status"].as_str()), (201, Some("AUSSTEHEND")), "{login}");

    let erika = json!({"customerNumber": "1000001", "lastName": "Mustermann"});
    let (status, _, login) = register(&api, erika, &unique("erika"), "Erika.Mustermann@Example.org").await;
    assert_eq!((status, login["status"].as_str()), (201, Some("AKTIV")), "{login}");
}
