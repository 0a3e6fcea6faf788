//! Identity: portal logins, sessions and passwords (capabilities 1, 2 and 12).
//!
//! - [`credentials`]: usernames, e-mail addresses, the password rules and argon2id hashing;
//! - [`sessions`]: opaque bearer tokens, their lifetime rules and the one [`sessions::Authenticator`]
//!   every function uses;
//! - [`registration`], [`access`] (login, logout, password change and reset) and
//!   [`account`]: the use cases.

pub mod access;
pub mod account;
pub mod credentials;
pub mod notices;
pub mod registration;
pub mod sessions;

use crate::entities::timestamp;
use crate::ids::{CustomerNumber, LoginId};
/// The login and a token's purpose belong to the shared kernel (the write path's requests
/// carry them); identity's use cases build on them.
pub use crate::logins::{LoginRecord, TokenPurpose};
use crate::ports::StoreError;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::future::Future;
use time::OffsetDateTime;

impl LoginRecord {
    pub fn new_login_id() -> LoginId {
        let hex = hex::encode_upper(credentials::random_bytes::<8>());
        LoginId::parse(&format!("L-{hex}")).expect("L- and hex digits form a login id")
    }
}

/// Claim keys that make usernames and customer numbers unique among logins.
pub fn username_claim(username: &str) -> String {
    format!("USERNAME#{username}")
}

pub fn partner_claim(customer: &CustomerNumber) -> String {
    format!("PARTNER#{customer}")
}

/// One session as stored: found by the hash of its bearer token. It holds no customer
/// numbers and no password state: the session check reads those from the login, in the
/// same round, so that a change to the login holds for every session at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub token_hash: String,
    pub login_id: LoginId,
    /// The login's [`LoginRecord::session_generation`] when the session opened.
    #[serde(default)]
    pub generation: u32,
    #[serde(with = "timestamp::serde")]
    pub created_at: OffsetDateTime,
    #[serde(with = "timestamp::serde")]
    pub last_seen_at: OffsetDateTime,
    /// Absolute end (epoch seconds); also the TTL attribute that cleans up.
    pub expires_at: i64,
}

/// A single-use token as stored (hashed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneTimeToken {
    pub token_hash: String,
    pub purpose: TokenPurpose,
    /// Customer number (registration) or login id (reset).
    pub subject: String,
    /// Epoch seconds.
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<i64>,
}

/// Portal logins.
pub trait LoginStore: Send + Sync {
    /// The login holding a claim (`USERNAME#…`, `PARTNER#…`), read consistently.
    fn by_claim(&self, claim: &str) -> impl Future<Output = Result<Option<LoginRecord>, StoreError>> + Send;
    fn get(&self, login_id: &LoginId) -> impl Future<Output = Result<Option<LoginRecord>, StoreError>> + Send;
    fn by_email(&self, email: &str) -> impl Future<Output = Result<Vec<LoginRecord>, StoreError>> + Send;
    /// Sets a new password and raises the session generation (ending every open session):
    /// the new generation.
    fn set_password(&self, login_id: &LoginId, hash: &str) -> impl Future<Output = Result<u32, StoreError>> + Send;
}

/// Why a throttled attempt may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub until: OffsetDateTime,
}

/// Failed attempts per subject (a username, a login's password change) with growing
/// delays. `begin` is atomic: it also holds the subject for a moment, so that parallel
/// attempts are taken one at a time and every delay applies.
pub trait LoginThrottle: Send + Sync {
    /// Starts an attempt: the failures so far, or when the next attempt is allowed.
    fn begin(
        &self,
        subject: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Result<u32, Throttled>, StoreError>> + Send;
    /// Records a failure: the new count and until when the subject is locked.
    fn fail(
        &self,
        subject: &str,
        failures: u32,
        locked_until: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ends an attempt that succeeded: failures are forgotten.
    fn clear(&self, subject: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Sessions.
pub trait SessionStore: Send + Sync {
    fn create(&self, session: &SessionRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, token_hash: &str) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;
    fn touch(&self, token_hash: &str, at: OffsetDateTime) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete(&self, token_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes every session of a login: clean-up only. Revocation itself is the session
    /// check's (login status and session generation, read with the session).
    fn delete_all(&self, login_id: &LoginId) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Single-use tokens.
pub trait TokenStore: Send + Sync {
    fn put(&self, token: &OneTimeToken) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, token_hash: &str) -> impl Future<Output = Result<Option<OneTimeToken>, StoreError>> + Send;
    /// Marks the token used if it is unused, unexpired and for `purpose`; false otherwise.
    fn consume(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now_epoch: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// An e-mail to one recipient. Its text is never logged.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: SecretString,
}

pub trait Mailer: Send + Sync {
    fn send(&self, mail: Mail) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where the request path hands a password-reset request (the username or e-mail address as
/// typed) to the worker that looks the login up and mails it.
pub trait ResetQueue: Send + Sync {
    fn enqueue(&self, username_or_email: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logins_debug_output_holds_neither_hash_nor_e_mail() {
        let login = crate::testkit::login(&["1000001"], "petra.schulz@example.org");
        let debug = format!("{login:?}");
        assert!(debug.starts_with("LoginRecord { login_id: LoginId(\"L-1\"), status: Active"), "{debug}");
        assert!(!debug.contains("argon2") && !debug.contains("petra"), "{debug}");
    }

    #[test]
    fn login_ids_are_random_and_claims_are_keyed_by_kind() {
        let (a, b) = (LoginRecord::new_login_id(), LoginRecord::new_login_id());
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("L-") && a.as_str().len() == 18, "{a}");
        assert!(a.as_str()[2..].bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{a}");
        assert_eq!(username_claim("jmueller"), "USERNAME#jmueller");
        assert_eq!(partner_claim(&crate::testkit::customer("1000002")), "PARTNER#1000002");
    }
}
