//! Fixtures shared by the domain's tests: the demo export behind the in-memory ports, a
//! fixed clock, callers and the confirmation of sensitive changes.

use crate::changes::Confirmation;
use crate::clock::FixedClock;
use crate::export::{MirrorSnapshot, parse_export};
use crate::identity::LoginRecord;
use crate::identity::access::LockoutPolicy;
use crate::identity::credentials::hash_password;
use crate::identity::sessions::Caller;
use crate::ids::{CustomerNumber, IdempotencyKey, LoginId};
use crate::memory::{MemoryLogins, MemoryThrottle};
use secrecy::SecretString;
use std::future::Future;
use time::OffsetDateTime;
use time::macros::datetime;

/// "Now" in every service test: 1 December 2026, 10:00 in Berlin.
pub const NOW: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

/// The password of the login in [`confirmation`].
pub const PASSWORD: &str = "Richtig-2026!";

/// The demo export (`fixtures/crm-demo.json`), parsed once.
pub fn demo() -> MirrorSnapshot {
    static DEMO: std::sync::OnceLock<MirrorSnapshot> = std::sync::OnceLock::new();
    DEMO.get_or_init(|| parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap()).clone()
}

pub fn run<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

pub fn customer(n: &str) -> CustomerNumber {
    CustomerNumber::parse(n).unwrap()
}

/// A caller of login `L-1` with these customer numbers, signed in at `signed_in_at`.
pub fn caller_at(customers: &[&str], signed_in_at: OffsetDateTime) -> Caller {
    Caller {
        login_id: LoginId::parse("L-1").unwrap(),
        partner_numbers: customers.iter().map(|c| customer(c)).collect(),
        must_change_password: false,
        token_hash: String::new(),
        signed_in_at,
    }
}

/// A caller who signed in long ago (a sensitive change needs the password).
pub fn caller(customers: &[&str]) -> Caller {
    caller_at(customers, datetime!(2026-12-01 06:00 UTC))
}

pub fn key(k: &str, fingerprint: &str) -> Option<(IdempotencyKey, String)> {
    Some((IdempotencyKey::parse(k).unwrap(), fingerprint.to_owned()))
}

pub fn login(customers: &[&str], email: &str) -> LoginRecord {
    LoginRecord {
        login_id: LoginId::parse("L-1").unwrap(),
        username: "jmueller".into(),
        email: email.into(),
        status: crate::entities::LoginStatus::Active,
        partner_numbers: customers.iter().map(|c| customer(c)).collect(),
        must_change_password: false,
        password_hash: password_hash(),
        password_expires_at: None,
        created_at: datetime!(2024-01-01 0:00 UTC),
        session_generation: 0,
    }
}

/// The confirmation of sensitive changes, with login `L-1` (password [`PASSWORD`],
/// e-mail `login@example.org`) stored.
pub fn confirmation(customers: &[&str]) -> Confirmation<MemoryLogins, MemoryThrottle, FixedClock> {
    let logins = MemoryLogins::default();
    logins.insert(login(customers, "login@example.org"));
    Confirmation {
        logins,
        throttle: MemoryThrottle::default(),
        clock: FixedClock(NOW),
        lockout: LockoutPolicy::default(),
    }
}

/// The hash of [`PASSWORD`], computed once (argon2id is slow on purpose).
pub fn password_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&SecretString::from(PASSWORD))).clone()
}

pub fn password() -> SecretString {
    SecretString::from(PASSWORD)
}

/// The personal-data step as a registrant fills it in.
pub fn personal() -> crate::identity::registration::PersonalData {
    crate::identity::registration::PersonalData {
        salutation: "Frau".into(),
        phone: Some(crate::contact::PhoneNumber::parse("+49 351 4711").unwrap()),
        terms_of_use_version: "2026-01".into(),
        privacy_notice_version: "2026-03".into(),
    }
}
