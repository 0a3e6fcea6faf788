//! Sessions: opaque bearer tokens of 256 random bits, of which only a SHA-256 hash is
//! stored; an idle timeout and an absolute lifetime enforced here (the store's TTL only
//! cleans up); and the one authentication step every function runs.

use super::credentials::random_bytes;
use super::{LoginRecord, SessionRecord, SessionStore};
use crate::clock::Clock;
use crate::ids::{CustomerNumber, LoginId};
use crate::ports::StoreError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// Lifetime rules of a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
    /// A session's last-seen time is written at most this often.
    pub touch_interval: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::minutes(30),
            absolute_lifetime: Duration::hours(12),
            touch_interval: Duration::minutes(1),
        }
    }
}

/// A fresh random token (URL-safe, 43 characters) and the hash under which it is stored.
pub fn new_token() -> (SecretString, String) {
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let hash = token_hash(&token);
    (SecretString::from(token), hash)
}

/// SHA-256 of a token, hex. Tokens carry 256 bits of entropy, so a fast hash suffices.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new session for a login that just proved its password.
pub fn open_session(login: &LoginRecord, now: OffsetDateTime, policy: &SessionPolicy) -> (SecretString, SessionRecord) {
    let (token, hash) = new_token();
    let record = SessionRecord {
        token_hash: hash,
        login_id: login.login_id.clone(),
        partner_numbers: login.partner_numbers.clone(),
        must_change_password: login.must_change_password,
        created_at: now,
        last_seen_at: now,
        expires_at: (now + policy.absolute_lifetime).unix_timestamp(),
    };
    (token, record)
}

/// The caller of an authenticated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub login_id: LoginId,
    pub partner_numbers: Vec<CustomerNumber>,
    pub must_change_password: bool,
    pub token_hash: String,
    /// When the login proved its password for this session.
    pub signed_in_at: OffsetDateTime,
}

impl Caller {
    /// Whether a customer number is one of the caller's: the object-level check.
    pub fn owns(&self, customer: &CustomerNumber) -> bool {
        self.partner_numbers.contains(customer)
    }
}

/// What an endpoint allows while the password must be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything else: refused until the password is changed.
    Regular,
    /// The password change itself and logout.
    DuringPasswordChange,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no session token")]
    Missing,
    /// Unknown, ended or expired: one answer for all.
    #[error("the session is not valid")]
    Invalid,
    #[error("the password must be changed first")]
    PasswordChangeRequired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The authentication step of every function.
pub struct Authenticator<S, C> {
    pub sessions: S,
    pub clock: C,
    pub policy: SessionPolicy,
}

impl<S: SessionStore, C: Clock> Authenticator<S, C> {
    /// Checks a bearer token: one read, and a write of the last-seen time at most once a minute.
    pub async fn authenticate(&self, bearer: Option<&SecretString>, access: Access) -> Result<Caller, AuthError> {
        let token = bearer.ok_or(AuthError::Missing)?;
        let hash = token_hash(token.expose_secret());
        let session = self.sessions.get(&hash).await?.ok_or(AuthError::Invalid)?;
        let now = self.clock.now();
        let idle = now - session.last_seen_at > self.policy.idle_timeout;
        let too_old = now - session.created_at > self.policy.absolute_lifetime;
        if idle || too_old {
            self.sessions.delete(&hash).await?;
            return Err(AuthError::Invalid);
        }
        if session.must_change_password && access == Access::Regular {
            return Err(AuthError::PasswordChangeRequired);
        }
        if now - session.last_seen_at > self.policy.touch_interval {
            self.sessions.touch(&hash, now).await?;
        }
        Ok(Caller {
            login_id: session.login_id,
            partner_numbers: session.partner_numbers,
            must_change_password: session.must_change_password,
            token_hash: hash,
            signed_in_at: session.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::entities::LoginStatus;
    use crate::memory::MemorySessions;
    use time::macros::datetime;

    fn login(must_change: bool) -> LoginRecord {
        LoginRecord {
            login_id: LoginId::parse("L-1").unwrap(),
            username: "pschulz".into(),
            email: "petra.schulz@example.org".into(),
            status: LoginStatus::Active,
            partner_numbers: vec![CustomerNumber::parse("1000005").unwrap()],
            must_change_password: must_change,
            password_hash: String::new(),
            password_expires_at: None,
            created_at: datetime!(2026-12-01 08:00 UTC),
        }
    }

    fn authenticator(sessions: &MemorySessions, at: OffsetDateTime) -> Authenticator<MemorySessions, FixedClock> {
        Authenticator { sessions: sessions.clone(), clock: FixedClock(at), policy: SessionPolicy::default() }
    }

    #[test]
    fn tokens_are_long_random_and_only_their_hash_is_stored() {
        let (a, hash) = new_token();
        let (b, _) = new_token();
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(hash, token_hash(a.expose_secret()));
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(hash, token_hash(b.expose_secret()));
    }

    #[test]
    fn idle_and_absolute_limits_are_enforced_by_the_code() {
        let sessions = MemorySessions::default();
        let start = datetime!(2026-12-01 08:00 UTC);
        let (token, record) = open_session(&login(false), start, &SessionPolicy::default());
        futures::executor::block_on(sessions.create(&record)).unwrap();
        let ok =
            |at| futures::executor::block_on(authenticator(&sessions, at).authenticate(Some(&token), Access::Regular));

        // Used every 25 minutes, the session lives until its absolute end.
        let mut at = start;
        for _ in 0..28 {
            at += Duration::minutes(25);
            assert!(ok(at).is_ok(), "refused at {at}");
        }
        at += Duration::minutes(25); // 12 h 5 min after the start
        assert!(matches!(ok(at), Err(AuthError::Invalid)));
        // And it is gone.
        assert!(futures::executor::block_on(sessions.get(&record.token_hash)).unwrap().is_none());

        // A session left alone for more than 30 minutes has ended.
        let (token, record) = open_session(&login(false), start, &SessionPolicy::default());
        futures::executor::block_on(sessions.create(&record)).unwrap();
        let idle = futures::executor::block_on(
            authenticator(&sessions, start + Duration::minutes(31)).authenticate(Some(&token), Access::Regular),
        );
        assert!(matches!(idle, Err(AuthError::Invalid)));
    }

    #[test]
    fn a_login_that_must_change_its_password_reaches_only_the_password_change() {
        let sessions = MemorySessions::default();
        let now = datetime!(2026-12-01 08:00 UTC);
        let (token, record) = open_session(&login(true), now, &SessionPolicy::default());
        futures::executor::block_on(sessions.create(&record)).unwrap();
        let auth = authenticator(&sessions, now);
        assert!(matches!(
            futures::executor::block_on(auth.authenticate(Some(&token), Access::Regular)),
            Err(AuthError::PasswordChangeRequired)
        ));
        assert!(futures::executor::block_on(auth.authenticate(Some(&token), Access::DuringPasswordChange)).is_ok());
        assert!(matches!(
            futures::executor::block_on(auth.authenticate(None, Access::Regular)),
            Err(AuthError::Missing)
        ));
        let forged = SecretString::from("x".repeat(43));
        assert!(matches!(
            futures::executor::block_on(auth.authenticate(Some(&forged), Access::Regular)),
            Err(AuthError::Invalid)
        ));
    }

    fn stored(sessions: &MemorySessions, created_at: OffsetDateTime, last_seen_at: OffsetDateTime) -> SecretString {
        let (token, mut record) = open_session(&login(false), created_at, &SessionPolicy::default());
        record.last_seen_at = last_seen_at;
        futures::executor::block_on(sessions.create(&record)).unwrap();
        token
    }

    fn check(sessions: &MemorySessions, token: &SecretString, at: OffsetDateTime) -> Result<Caller, AuthError> {
        futures::executor::block_on(authenticator(sessions, at).authenticate(Some(token), Access::Regular))
    }

    #[test]
    fn the_limits_are_inclusive_to_the_second() {
        let sessions = MemorySessions::default();
        let start = datetime!(2026-12-01 08:00 UTC);
        let idle = stored(&sessions, start, start);
        assert!(check(&sessions, &idle, start + Duration::minutes(30)).is_ok(), "idle exactly 30 minutes");
        let idle = stored(&sessions, start, start);
        assert!(matches!(
            check(&sessions, &idle, start + Duration::minutes(30) + Duration::seconds(1)),
            Err(AuthError::Invalid)
        ));

        let end = start + Duration::hours(12);
        let old = stored(&sessions, start, end - Duration::minutes(1));
        assert!(check(&sessions, &old, end).is_ok(), "exactly 12 hours old");
        let old = stored(&sessions, start, end - Duration::minutes(1));
        assert!(matches!(check(&sessions, &old, end + Duration::seconds(1)), Err(AuthError::Invalid)));
    }

    #[test]
    fn the_last_seen_time_is_written_at_most_once_a_minute() {
        let sessions = MemorySessions::default();
        let start = datetime!(2026-12-01 08:00 UTC);
        let token = stored(&sessions, start, start);
        let hash = token_hash(token.expose_secret());
        let last_seen = || futures::executor::block_on(sessions.get(&hash)).unwrap().unwrap().last_seen_at;
        check(&sessions, &token, start + Duration::minutes(1)).unwrap();
        assert_eq!(last_seen(), start, "a minute later: not yet");
        check(&sessions, &token, start + Duration::seconds(61)).unwrap();
        assert_eq!(last_seen(), start + Duration::seconds(61));
    }

    #[test]
    fn the_caller_is_the_sessions_login_with_its_customer_numbers() {
        let sessions = MemorySessions::default();
        let start = datetime!(2026-12-01 08:00 UTC);
        let (token, record) = open_session(&login(true), start, &SessionPolicy::default());
        assert_eq!(record.expires_at, (start + Duration::hours(12)).unix_timestamp());
        assert_eq!((record.created_at, record.last_seen_at), (start, start));
        assert!(record.must_change_password);
        assert_eq!(record.partner_numbers, login(true).partner_numbers);
        futures::executor::block_on(sessions.create(&record)).unwrap();
        let auth = authenticator(&sessions, start + Duration::minutes(5));
        let caller =
            futures::executor::block_on(auth.authenticate(Some(&token), Access::DuringPasswordChange)).unwrap();
        assert_eq!(
            caller,
            Caller {
                login_id: LoginId::parse("L-1").unwrap(),
                partner_numbers: vec![CustomerNumber::parse("1000005").unwrap()],
                must_change_password: true,
                token_hash: record.token_hash.clone(),
                signed_in_at: start,
            }
        );
        assert!(caller.owns(&CustomerNumber::parse("1000005").unwrap()));
        assert!(!caller.owns(&CustomerNumber::parse("1000001").unwrap()));
    }
}
