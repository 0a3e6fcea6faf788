//! Sessions: opaque bearer tokens of 256 random bits, of which only a SHA-256 hash is
//! stored; an idle timeout and an absolute lifetime enforced here (the store's TTL only
//! cleans up); and the one authentication step every function runs.

use super::credentials::random_bytes;
use super::{LoginRecord, LoginStore, SessionRecord, SessionStore};
use crate::clock::Clock;
use crate::entities::LoginStatus;
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

/// Separates the login id from the random part of a session token.
const LOGIN_SEPARATOR: char = '.';

/// The login a session token names: `<login id>.<43 random characters>`. The id lets the
/// session check read the login in the same round as the session; the token's secret is
/// its random part, and only the hash of the whole token is stored.
pub fn login_of_token(token: &str) -> Option<LoginId> {
    let (login, random) = token.split_once(LOGIN_SEPARATOR)?;
    (random.len() == 43).then(|| LoginId::parse(login).ok()).flatten()
}

/// A new session for a login that just proved its password.
pub fn open_session(login: &LoginRecord, now: OffsetDateTime, policy: &SessionPolicy) -> (SecretString, SessionRecord) {
    let (random, _) = new_token();
    let token = format!("{}{LOGIN_SEPARATOR}{}", login.login_id, random.expose_secret());
    let hash = token_hash(&token);
    let token = SecretString::from(token);
    let record = SessionRecord {
        token_hash: hash,
        login_id: login.login_id.clone(),
        generation: login.session_generation,
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
pub struct Authenticator<S, G, C> {
    pub sessions: S,
    pub logins: G,
    pub clock: C,
    pub policy: SessionPolicy,
}

impl<S: SessionStore, G: LoginStore, C: Clock> Authenticator<S, G, C> {
    /// Checks a bearer token: the session and its login, read in one concurrent round, and
    /// a write of the last-seen time at most once a minute.
    ///
    /// Revocation is immediate because it is decided here: a session is valid only while its
    /// login is active and has the generation the session opened with (a password change or
    /// reset raises it), and the caller's customer numbers and password state are the
    /// login's as they are now.
    pub async fn authenticate(&self, bearer: Option<&SecretString>, access: Access) -> Result<Caller, AuthError> {
        let token = bearer.ok_or(AuthError::Missing)?;
        let login_id = login_of_token(token.expose_secret()).ok_or(AuthError::Invalid)?;
        let hash = token_hash(token.expose_secret());
        let (session, login) = futures::join!(self.sessions.get(&hash), self.logins.get(&login_id));
        let session = session?.ok_or(AuthError::Invalid)?;
        let login = login?;
        let now = self.clock.now();
        let idle = now - session.last_seen_at > self.policy.idle_timeout;
        let too_old = now - session.created_at > self.policy.absolute_lifetime;
        let login = login.filter(|l| {
            l.login_id == session.login_id
                && l.status == LoginStatus::Active
                && l.session_generation == session.generation
        });
        let Some(login) = login.filter(|_| !idle && !too_old) else {
            self.sessions.delete(&hash).await?;
            return Err(AuthError::Invalid);
        };
        if login.must_change_password && access == Access::Regular {
            return Err(AuthError::PasswordChangeRequired);
        }
        if now - session.last_seen_at > self.policy.touch_interval {
            self.sessions.touch(&hash, now).await?;
        }
        Ok(Caller {
            login_id: login.login_id,
            partner_numbers: login.partner_numbers,
            must_change_password: login.must_change_password,
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
    use crate::memory::{MemoryLogins, MemorySessions};
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
            session_generation: 0,
        }
    }

    /// The sessions and the one login they belong to.
    struct Stack {
        sessions: MemorySessions,
        logins: MemoryLogins,
    }

    impl Stack {
        fn with(login: LoginRecord) -> Self {
            let logins = MemoryLogins::default();
            logins.insert(login);
            Self { sessions: MemorySessions::default(), logins }
        }
    }

    impl Default for Stack {
        fn default() -> Self {
            Self::with(login(false))
        }
    }

    impl std::ops::Deref for Stack {
        type Target = MemorySessions;
        fn deref(&self) -> &MemorySessions {
            &self.sessions
        }
    }

    fn authenticator(stack: &Stack, at: OffsetDateTime) -> Authenticator<MemorySessions, MemoryLogins, FixedClock> {
        Authenticator {
            sessions: stack.sessions.clone(),
            logins: stack.logins.clone(),
            clock: FixedClock(at),
            policy: SessionPolicy::default(),
        }
    }

    #[test]
    fn session_tokens_name_their_login_before_a_long_random_part() {
        let (token, record) = open_session(&login(false), datetime!(2026-12-01 08:00 UTC), &SessionPolicy::default());
        let (id, random) = token.expose_secret().split_once('.').unwrap();
        assert_eq!((id, random.len()), ("L-1", 43));
        assert_eq!(login_of_token(token.expose_secret()), Some(LoginId::parse("L-1").unwrap()));
        assert_eq!(record.token_hash, token_hash(token.expose_secret()));
        assert_eq!(login_of_token(&format!("L-1.{}", "x".repeat(42))), None);
        assert_eq!(login_of_token(&"x".repeat(43)), None);
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
        let sessions = Stack::default();
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
        let sessions = Stack::with(login(true));
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
        for forged in
            ["x".repeat(43), format!("L-1.{}", "x".repeat(43)), "L-1.short".into(), "l-1.".to_owned() + &"x".repeat(43)]
        {
            assert!(matches!(
                futures::executor::block_on(auth.authenticate(Some(&SecretString::from(forged)), Access::Regular)),
                Err(AuthError::Invalid)
            ));
        }
    }

    fn stored(sessions: &Stack, created_at: OffsetDateTime, last_seen_at: OffsetDateTime) -> SecretString {
        let (token, mut record) = open_session(&login(false), created_at, &SessionPolicy::default());
        record.last_seen_at = last_seen_at;
        futures::executor::block_on(sessions.create(&record)).unwrap();
        token
    }

    fn check(sessions: &Stack, token: &SecretString, at: OffsetDateTime) -> Result<Caller, AuthError> {
        futures::executor::block_on(authenticator(sessions, at).authenticate(Some(token), Access::Regular))
    }

    #[test]
    fn the_limits_are_inclusive_to_the_second() {
        let sessions = Stack::default();
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
        let sessions = Stack::default();
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
        let sessions = Stack::with(login(true));
        let start = datetime!(2026-12-01 08:00 UTC);
        let (token, record) = open_session(&login(true), start, &SessionPolicy::default());
        assert_eq!(record.expires_at, (start + Duration::hours(12)).unix_timestamp());
        assert_eq!((record.created_at, record.last_seen_at), (start, start));
        assert_eq!(record.generation, 0);
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

    #[test]
    fn a_change_to_the_login_holds_for_its_open_sessions_at_once() {
        let start = datetime!(2026-12-01 08:00 UTC);
        let at = start + Duration::minutes(1);
        let changed = |change: &dyn Fn(&mut LoginRecord)| {
            let stack = Stack::default();
            let token = stored(&stack, start, start);
            let mut l = login(false);
            change(&mut l);
            stack.logins.insert(l);
            check(&stack, &token, at)
        };
        assert!(changed(&|_| ()).is_ok());
        // A password change or reset raises the generation: older sessions are refused.
        assert!(matches!(changed(&|l| l.session_generation += 1), Err(AuthError::Invalid)));
        for status in [LoginStatus::Locked, LoginStatus::Deleted, LoginStatus::Pending] {
            assert!(matches!(changed(&|l| l.status = status), Err(AuthError::Invalid)), "{status:?}");
        }
        // A customer number the login no longer holds is gone from the caller at once.
        let caller = changed(&|l| l.partner_numbers = vec![CustomerNumber::parse("1000002").unwrap()]).unwrap();
        assert_eq!(caller.partner_numbers, [CustomerNumber::parse("1000002").unwrap()]);
        // The CRM asks for a new password: the session reaches only the password change.
        assert!(matches!(changed(&|l| l.must_change_password = true), Err(AuthError::PasswordChangeRequired)));
        // A login gone from the store, or a token naming another login, ends the session.
        let stack = Stack::default();
        let token = stored(&stack, start, start);
        let hash = token_hash(token.expose_secret());
        let other = SecretString::from(token.expose_secret().replacen("L-1.", "L-2.", 1));
        assert!(matches!(check(&stack, &other, at), Err(AuthError::Invalid)));
        let empty = Stack { sessions: stack.sessions.clone(), logins: MemoryLogins::default() };
        assert!(matches!(check(&empty, &token, at), Err(AuthError::Invalid)));
        assert!(futures::executor::block_on(stack.sessions.get(&hash)).unwrap().is_none(), "and it is removed");
    }
}
