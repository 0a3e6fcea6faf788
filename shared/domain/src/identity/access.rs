//! Capability 2: login, logout, password change, password reset.

use super::credentials::{DUMMY_HASH, NewPassword, PasswordRule, Username, verify_password};
use super::sessions::{Caller, SessionPolicy, new_token, open_session, token_hash};
use super::{
    LoginRecord, LoginStore, LoginThrottle, Mail, Mailer, OneTimeToken, ResetQueue, SessionStore, Throttled,
    TokenPurpose, TokenStore, username_claim,
};
use crate::budgets::{self, Exhausted, FailureBudgets, SourceAddress, Subject};
use crate::clock::Clock;
use crate::entities::LoginStatus;
use crate::ports::{AttemptLimiter, StoreError};
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;
use time::{Duration, OffsetDateTime};

/// Growing delays after repeated failed logins of one account.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Failures allowed before the first delay.
    pub free_failures: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for LockoutPolicy {
    /// Delays of 30 s, 1, 2, 4, 8 minutes, then 15 minutes: at most about a dozen
    /// failures an hour, far below the limit of 100.
    fn default() -> Self {
        Self { free_failures: 5, first_delay: Duration::seconds(30), max_delay: Duration::minutes(15) }
    }
}

impl LockoutPolicy {
    /// Until when a subject with `failures` failures, the last at `at`, refuses attempts.
    pub fn locked_until(&self, failures: u32, at: OffsetDateTime) -> OffsetDateTime {
        match failures.checked_sub(self.free_failures) {
            None => at,
            Some(excess) => at + (self.first_delay * 2f64.powi(excess.min(20) as i32)).min(self.max_delay),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Unknown user, deleted or pending login, or a wrong password: one answer for all.
    #[error("username or password is wrong")]
    InvalidCredentials,
    #[error("the initial password has expired")]
    InitialPasswordExpired,
    /// The right password of a login that waits for the CRM's approval (AUSSTEHEND).
    #[error("the login waits for approval")]
    PendingApproval,
    #[error("too many failed logins; retry later")]
    TooManyAttempts { retry_after: Duration },
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("{}", .0.message())]
    NewPassword(PasswordRule),
    #[error("the reset token is not valid")]
    InvalidResetToken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new session for the client.
pub struct SessionGrant {
    pub token: SecretString,
    pub expires_at: OffsetDateTime,
    pub idle_timeout: Duration,
    pub must_change_password: bool,
}

pub struct AccessService<G, S, T, M, H, L, C> {
    pub logins: G,
    pub sessions: S,
    pub tokens: T,
    pub mailer: M,
    pub throttle: H,
    /// The failure budgets of logins per source address and deployment.
    pub limiter: L,
    pub clock: C,
    pub session_policy: SessionPolicy,
    pub lockout: LockoutPolicy,
    pub budgets: FailureBudgets,
}

/// The request path of a password reset: the name's, the source address's and the
/// deployment's budgets, then the request handed to a queue. Its AWS calls are the same
/// whether or not a login has that name, so neither the answer nor its time tells; the
/// worker behind the queue looks the login up and mails it ([`AccessService::send_reset`]).
pub struct ResetDesk<L, Q, C> {
    pub limiter: L,
    pub queue: Q,
    pub clock: C,
    pub budgets: FailureBudgets,
    /// Reset requests per username or e-mail address and hour (`ResetsPerNamePerHour`).
    pub per_name_per_hour: u32,
}

impl<L: AttemptLimiter, Q: ResetQueue, C: Clock> ResetDesk<L, Q, C> {
    /// Takes a slot of every budget and keeps it (a mailbox cannot be flooded, nor many names
    /// asked about from one address), then queues the request.
    pub async fn request(&self, username_or_email: &str, source: &SourceAddress) -> Result<(), AccessError> {
        let own = reset_subject(username_or_email, self.per_name_per_hour);
        let _kept =
            budgets::take(&self.limiter, &self.clock, &self.budgets, source, Some(&own)).await?.map_err(exhausted)?;
        self.queue.enqueue(username_or_email.trim()).await?;
        Ok(())
    }
}

/// The budget key of reset requests for one username or e-mail address: hashed, so that the
/// rate-limit table holds no address in clear.
fn reset_subject(username_or_email: &str, per_hour: u32) -> Subject {
    let digest = sha2::Sha256::digest(username_or_email.trim().to_lowercase().as_bytes());
    Subject { key: format!("reset#{}", &hex::encode(digest)[..32]), per_hour }
}

fn exhausted(e: Exhausted) -> AccessError {
    AccessError::TooManyAttempts { retry_after: e.retry_after }
}

const RESET_TOKEN_LIFETIME: Duration = Duration::minutes(30);

/// Removes the sessions of a login whose change has committed. The change itself already
/// ended them (the session check compares the login's status and session generation), so a
/// failure here leaves only records for the TTL to clean up: logged, not answered.
pub async fn end_sessions(sessions: &impl SessionStore, login_id: &crate::ids::LoginId) {
    if let Err(e) = sessions.delete_all(login_id).await {
        tracing::warn!(%login_id, error = %e, "ended sessions not removed; the session check refuses them");
    }
}

/// Runs one throttled attempt: refused while the subject is locked; a failure (`Ok(false)`
/// from `attempt`) extends the lock, a success clears it.
pub async fn throttled<R>(
    throttle: &impl LoginThrottle,
    lockout: &LockoutPolicy,
    now: OffsetDateTime,
    subject: &str,
    attempt: impl std::future::Future<Output = Result<(bool, R), AccessError>>,
) -> Result<(bool, R), AccessError> {
    let failures = match throttle.begin(subject, now).await? {
        Ok(failures) => failures,
        Err(Throttled { until }) => return Err(AccessError::TooManyAttempts { retry_after: until - now }),
    };
    let (ok, result) = attempt.await?;
    if ok {
        throttle.clear(subject).await?;
    } else {
        let failures = failures + 1;
        throttle.fail(subject, failures, lockout.locked_until(failures, now)).await?;
    }
    Ok((ok, result))
}

impl<G: LoginStore, S: SessionStore, T: TokenStore, M: Mailer, H: LoginThrottle, L: AttemptLimiter, C: Clock>
    AccessService<G, S, T, M, H, L, C>
{
    async fn throttled<R>(
        &self,
        subject: &str,
        attempt: impl std::future::Future<Output = Result<(bool, R), AccessError>>,
    ) -> Result<(bool, R), AccessError> {
        throttled(&self.throttle, &self.lockout, self.clock.now(), subject, attempt).await
    }

    async fn grant(&self, login: &LoginRecord) -> Result<SessionGrant, AccessError> {
        let now = self.clock.now();
        let (token, session) = open_session(login, now, &self.session_policy);
        self.sessions.create(&session).await?;
        Ok(SessionGrant {
            token,
            expires_at: now + self.session_policy.absolute_lifetime,
            idle_timeout: self.session_policy.idle_timeout,
            must_change_password: login.must_change_password,
        })
    }

    /// Login. Every path takes the same steps: a slot of the source address's and the
    /// deployment's failure budgets (given back on success), one throttled attempt per
    /// username (known or not), one argon2id verification (against a dummy hash for an
    /// unknown user), and one generic failure answer.
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        source: &SourceAddress,
    ) -> Result<SessionGrant, AccessError> {
        let slots = budgets::take(&self.limiter, &self.clock, &self.budgets, source, None).await?.map_err(exhausted)?;
        let name = username.trim().to_lowercase();
        let subject = format!("login#{name}");
        let (ok, login) = self
            .throttled(&subject, async {
                let login = match Username::parse(&name) {
                    Ok(name) => self.logins.by_claim(&username_claim(name.as_str())).await?,
                    Err(_) => None,
                };
                let hash = login.as_ref().map_or(DUMMY_HASH, |l| l.password_hash.as_str());
                let verified = verify_password(password, hash);
                Ok((verified && login.is_some(), login))
            })
            .await?;
        let login = login.filter(|_| ok).ok_or(AccessError::InvalidCredentials)?;
        match login.status {
            LoginStatus::Active => {}
            // The right password: the customer may know that the CRM has yet to approve.
            LoginStatus::Pending => {
                budgets::give_back(&self.limiter, slots).await;
                return Err(AccessError::PendingApproval);
            }
            _ => return Err(AccessError::InvalidCredentials),
        }
        if login.must_change_password && login.password_expires_at.is_some_and(|end| self.clock.now() > end) {
            return Err(AccessError::InitialPasswordExpired);
        }
        let (_, grant) = futures::join!(budgets::give_back(&self.limiter, slots), self.grant(&login));
        grant
    }

    pub async fn logout(&self, caller: &Caller) -> Result<(), AccessError> {
        Ok(self.sessions.delete(&caller.token_hash).await?)
    }

    /// Changes the password; every session of the login ends, and the caller gets a new one.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &SecretString,
        new: &SecretString,
    ) -> Result<SessionGrant, AccessError> {
        let login = self.logins.get(&caller.login_id).await?.ok_or(AccessError::InvalidCredentials)?;
        let subject = format!("password-change#{}", login.login_id);
        let (ok, ()) =
            self.throttled(&subject, async { Ok((verify_password(current, &login.password_hash), ())) }).await?;
        if !ok {
            return Err(AccessError::WrongCurrentPassword);
        }
        let username = Username::parse(&login.username).map_err(|e| StoreError(e.to_owned()))?;
        let new_password = NewPassword::parse(new, &username).map_err(AccessError::NewPassword)?;
        if new.expose_secret() == current.expose_secret() {
            return Err(AccessError::NewPassword(PasswordRule::Unchanged));
        }
        let generation = self.logins.set_password(&login.login_id, &new_password.hash()).await?;
        end_sessions(&self.sessions, &login.login_id).await;
        let changed = LoginRecord {
            must_change_password: false,
            password_expires_at: None,
            session_generation: generation,
            ..login
        };
        self.grant(&changed).await
    }

    /// Sends the reset of a queued request ([`ResetDesk`]), off the request path: an active
    /// login found by username or e-mail address gets an e-mail with a single-use code; an
    /// unknown name gets nothing.
    pub async fn send_reset(&self, username_or_email: &str) -> Result<(), AccessError> {
        let wanted = username_or_email.trim();
        let logins = if wanted.contains('@') {
            self.logins.by_email(&wanted.to_lowercase()).await?
        } else {
            match Username::parse(wanted) {
                Ok(name) => self.logins.by_claim(&username_claim(name.as_str())).await?.into_iter().collect(),
                Err(_) => Vec::new(),
            }
        };
        let now = self.clock.now();
        for login in logins.into_iter().filter(|l| l.status == LoginStatus::Active).take(3) {
            let (token, hash) = new_token();
            self.tokens
                .put(&OneTimeToken {
                    token_hash: hash,
                    purpose: TokenPurpose::PasswordReset,
                    subject: login.login_id.to_string(),
                    expires_at: (now + RESET_TOKEN_LIFETIME).unix_timestamp(),
                    used_at: None,
                })
                .await?;
            let text = format!(
                "Guten Tag,\n\nfür Ihren Zugang zum Kundenportal (Benutzername {}) wurde ein neues Passwort angefordert.\n\n\
                 Ihr Code zum Zurücksetzen: {}\n\nDer Code ist 30 Minuten gültig und kann einmal verwendet werden. \
                 Haben Sie nichts angefordert, können Sie diese Nachricht ignorieren.\n",
                login.username,
                token.expose_secret()
            );
            let mail = Mail {
                to: login.email.clone(),
                subject: "Passwort zurücksetzen".into(),
                text: SecretString::from(text),
            };
            if let Err(e) = self.mailer.send(mail).await {
                tracing::warn!(login_id = %login.login_id, error = %e, "reset mail not sent");
            }
        }
        Ok(())
    }

    /// Completes a reset: the token is used once, the new password set, every session ends.
    pub async fn confirm_reset(&self, token: &SecretString, new: &SecretString) -> Result<(), AccessError> {
        let hash = token_hash(token.expose_secret());
        let now = self.clock.now().unix_timestamp();
        let stored = self.tokens.get(&hash).await?;
        let stored = stored
            .filter(|t| t.purpose == TokenPurpose::PasswordReset && t.used_at.is_none() && t.expires_at > now)
            .ok_or(AccessError::InvalidResetToken)?;
        let login_id = crate::ids::LoginId::parse(&stored.subject).map_err(|e| StoreError(e.to_string()))?;
        let login = self
            .logins
            .get(&login_id)
            .await?
            .filter(|l| l.status == LoginStatus::Active)
            .ok_or(AccessError::InvalidResetToken)?;
        let username = Username::parse(&login.username).map_err(|e| StoreError(e.to_owned()))?;
        // Checked before the token is used, so that a refused password does not burn it.
        let new_password = NewPassword::parse(new, &username).map_err(AccessError::NewPassword)?;
        if !self.tokens.consume(&hash, TokenPurpose::PasswordReset, now).await? {
            return Err(AccessError::InvalidResetToken);
        }
        self.logins.set_password(&login.login_id, &new_password.hash()).await?;
        end_sessions(&self.sessions, &login.login_id).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::identity::sessions::{Access, AuthError, Authenticator};
    use crate::memory::{
        MemoryLimiter, MemoryLogins, MemoryMailer, MemoryResetQueue, MemorySessions, MemoryThrottle, MemoryTokens,
    };
    use crate::testkit::{NOW, PASSWORD, login, password, run};
    use time::macros::datetime;

    type Service = AccessService<
        MemoryLogins,
        MemorySessions,
        MemoryTokens,
        MemoryMailer,
        MemoryThrottle,
        MemoryLimiter,
        FixedClock,
    >;

    fn service_at(now: OffsetDateTime, stored: &[LoginRecord]) -> Service {
        let logins = MemoryLogins::default();
        for l in stored {
            logins.insert(l.clone());
        }
        AccessService {
            logins,
            sessions: MemorySessions::default(),
            tokens: MemoryTokens::default(),
            mailer: MemoryMailer::default(),
            throttle: MemoryThrottle::default(),
            clock: FixedClock(now),
            session_policy: SessionPolicy::default(),
            lockout: LockoutPolicy::default(),
            limiter: MemoryLimiter::default(),
            budgets: FailureBudgets::default(),
        }
    }

    fn jmueller() -> LoginRecord {
        login(&["1000002"], "j.mueller@example.org")
    }

    fn service() -> Service {
        service_at(NOW, &[jmueller()])
    }

    fn pw(s: &str) -> SecretString {
        SecretString::from(s)
    }

    fn with_clock(s: &Service, now: OffsetDateTime) -> Service {
        AccessService {
            logins: s.logins.clone(),
            sessions: s.sessions.clone(),
            tokens: s.tokens.clone(),
            mailer: s.mailer.clone(),
            throttle: s.throttle.clone(),
            clock: FixedClock(now),
            session_policy: s.session_policy,
            lockout: s.lockout,
            limiter: s.limiter.clone(),
            budgets: s.budgets,
        }
    }

    fn session_of(s: &Service, grant: &SessionGrant) -> Option<crate::identity::SessionRecord> {
        run(s.sessions.get(&token_hash(grant.token.expose_secret()))).unwrap()
    }

    /// The session check of a request made with a grant's token.
    fn check<S: SessionStore + Clone>(
        sessions: &S,
        logins: &MemoryLogins,
        grant: &SessionGrant,
    ) -> Result<super::super::sessions::Caller, AuthError> {
        let auth = Authenticator {
            sessions: sessions.clone(),
            logins: logins.clone(),
            clock: FixedClock(NOW),
            policy: SessionPolicy::default(),
        };
        run(auth.authenticate(Some(&grant.token), Access::Regular))
    }

    /// Sessions behind an index that has not yet seen them: the clean-up after a change
    /// finds none (as DynamoDB's eventually consistent `by-login` index can answer).
    #[derive(Clone, Default)]
    struct LaggingSessions(MemorySessions);

    impl SessionStore for LaggingSessions {
        async fn create(&self, session: &crate::identity::SessionRecord) -> Result<(), StoreError> {
            self.0.create(session).await
        }
        async fn get(&self, token_hash: &str) -> Result<Option<crate::identity::SessionRecord>, StoreError> {
            self.0.get(token_hash).await
        }
        async fn touch(&self, token_hash: &str, at: OffsetDateTime) -> Result<(), StoreError> {
            self.0.touch(token_hash, at).await
        }
        async fn delete(&self, token_hash: &str) -> Result<(), StoreError> {
            self.0.delete(token_hash).await
        }
        async fn delete_all(&self, _: &crate::ids::LoginId) -> Result<usize, StoreError> {
            Ok(0)
        }
    }

    #[test]
    fn a_session_never_works_after_a_password_change_or_reset_even_when_the_clean_up_finds_it_not() {
        let logins = MemoryLogins::default();
        logins.insert(jmueller());
        let s = AccessService {
            logins: logins.clone(),
            sessions: LaggingSessions::default(),
            tokens: MemoryTokens::default(),
            mailer: MemoryMailer::default(),
            throttle: MemoryThrottle::default(),
            clock: FixedClock(NOW),
            session_policy: SessionPolicy::default(),
            lockout: LockoutPolicy::default(),
            limiter: MemoryLimiter::default(),
            budgets: FailureBudgets::default(),
        };
        let before = run(s.login("jmueller", &password(), &Default::default())).unwrap();
        let me = check(&s.sessions, &logins, &before).unwrap();
        let after = run(s.change_password(&me, &password(), &pw("Neues-Passwort-2027"))).unwrap();
        assert!(matches!(check(&s.sessions, &logins, &before), Err(AuthError::Invalid)), "changed in another session");
        assert!(check(&s.sessions, &logins, &after).is_ok(), "the session the change opened");

        run(s.send_reset("jmueller")).unwrap();
        let text = s.mailer.texts().pop().expect("a reset mail");
        let code = text.split("Ihr Code zum Zurücksetzen: ").nth(1).unwrap().split('\n').next().unwrap();
        run(s.confirm_reset(&pw(code), &pw("Drittes-Passwort-2028"))).unwrap();
        assert!(matches!(check(&s.sessions, &logins, &after), Err(AuthError::Invalid)), "after a reset");
        let fresh = run(s.login("jmueller", &pw("Drittes-Passwort-2028"), &Default::default())).unwrap();
        assert!(check(&s.sessions, &logins, &fresh).is_ok());
    }

    #[test]
    fn a_login_opens_a_session_with_the_policys_limits() {
        let s = service();
        let grant = run(s.login(" JMueller ", &password(), &Default::default())).unwrap();
        assert_eq!(grant.expires_at, NOW + Duration::hours(12));
        assert_eq!(grant.idle_timeout, Duration::minutes(30));
        assert!(!grant.must_change_password);
        let session = session_of(&s, &grant).unwrap();
        assert_eq!((session.login_id.as_str(), session.created_at), ("L-1", NOW));
        run(s.logout(&crate::testkit::caller(&["1000002"]))).unwrap();
        assert!(session_of(&s, &grant).is_some(), "another session's logout");
        let caller = super::super::sessions::Caller {
            token_hash: token_hash(grant.token.expose_secret()),
            ..crate::testkit::caller(&["1000002"])
        };
        run(s.logout(&caller)).unwrap();
        assert!(session_of(&s, &grant).is_none());
    }

    #[test]
    fn unknown_inactive_and_wrong_get_one_answer() {
        let deleted = LoginRecord {
            login_id: crate::ids::LoginId::parse("L-2").unwrap(),
            username: "kweber".into(),
            status: LoginStatus::Deleted,
            ..jmueller()
        };
        let pending = LoginRecord {
            login_id: crate::ids::LoginId::parse("L-3").unwrap(),
            username: "pschulz".into(),
            status: LoginStatus::Pending,
            ..jmueller()
        };
        let s = service_at(NOW, &[jmueller(), deleted, pending]);
        for (user, pass) in [
            ("jmueller", "Falsch-2026!"),
            ("nobody", PASSWORD),
            ("kweber", PASSWORD),
            ("pschulz", "Falsch-2026!"),
            ("-x", PASSWORD),
        ] {
            let r = run(s.login(user, &pw(pass), &Default::default()));
            assert!(matches!(r, Err(AccessError::InvalidCredentials)), "{user}");
        }
    }

    #[test]
    fn an_initial_password_expires_at_its_end() {
        let end = NOW + Duration::hours(1);
        let initial = LoginRecord { must_change_password: true, password_expires_at: Some(end), ..jmueller() };
        let s = service_at(end, std::slice::from_ref(&initial));
        let grant = run(s.login("jmueller", &password(), &Default::default())).unwrap();
        assert!(grant.must_change_password);
        assert!(matches!(check(&s.sessions, &s.logins, &grant), Err(AuthError::PasswordChangeRequired)));
        let s = service_at(end + Duration::seconds(1), &[initial]);
        assert!(matches!(
            run(s.login("jmueller", &password(), &Default::default())),
            Err(AccessError::InitialPasswordExpired)
        ));
        // A password that was changed does not expire.
        let changed = LoginRecord { password_expires_at: Some(end), ..jmueller() };
        let s = service_at(end + Duration::days(1), &[changed]);
        assert!(run(s.login("jmueller", &password(), &Default::default())).is_ok());
    }

    #[test]
    fn failed_logins_lock_the_username_and_a_success_forgets_them() {
        let s = service();
        let wrong = pw("Falsch-2026!");
        for _ in 0..4 {
            assert!(matches!(
                run(s.login("jmueller", &wrong, &Default::default())),
                Err(AccessError::InvalidCredentials)
            ));
        }
        run(s.login("jmueller", &password(), &Default::default())).unwrap();
        for _ in 0..4 {
            assert!(matches!(
                run(s.login("JMUELLER", &wrong, &Default::default())),
                Err(AccessError::InvalidCredentials)
            ));
        }
        run(s.login("jmueller", &password(), &Default::default())).expect("four failures after a success do not lock");
        for _ in 0..5 {
            assert!(matches!(
                run(s.login("jmueller", &wrong, &Default::default())),
                Err(AccessError::InvalidCredentials)
            ));
        }
        // The fifth failure locks for 30 seconds, even the right password.
        let r = run(s.login("jmueller", &password(), &Default::default()));
        assert!(
            matches!(r, Err(AccessError::TooManyAttempts { retry_after }) if retry_after == Duration::seconds(30)),
            "{:?}",
            r.err()
        );
        let later = with_clock(&s, NOW + Duration::seconds(10));
        let r = run(later.login("jmueller", &password(), &Default::default()));
        assert!(
            matches!(r, Err(AccessError::TooManyAttempts { retry_after }) if retry_after == Duration::seconds(20)),
            "{:?}",
            r.err()
        );
        let after = with_clock(&s, NOW + Duration::seconds(30));
        run(after.login("jmueller", &password(), &Default::default())).unwrap();
        // An unknown username is throttled the same way.
        for _ in 0..5 {
            let _ = run(s.login("nobody", &wrong, &Default::default()));
        }
        assert!(matches!(
            run(s.login("nobody", &wrong, &Default::default())),
            Err(AccessError::TooManyAttempts { .. })
        ));
    }

    #[test]
    fn a_password_change_checks_the_current_one_and_ends_every_session() {
        let initial = LoginRecord {
            must_change_password: true,
            password_expires_at: Some(NOW + Duration::hours(1)),
            ..jmueller()
        };
        let s = service_at(NOW, &[initial]);
        let old_session = run(s.login("jmueller", &password(), &Default::default())).unwrap();
        let caller = crate::testkit::caller(&["1000002"]);
        let r = run(s.change_password(&caller, &pw("Falsch-2026!"), &pw("Neues-Passwort-2027")));
        assert!(matches!(r, Err(AccessError::WrongCurrentPassword)), "{:?}", r.err());
        let r = run(s.change_password(&caller, &password(), &pw("kurz")));
        assert!(matches!(r, Err(AccessError::NewPassword(PasswordRule::TooShort))), "{:?}", r.err());
        let r = run(s.change_password(&caller, &password(), &password()));
        assert!(matches!(r, Err(AccessError::NewPassword(PasswordRule::Unchanged))), "{:?}", r.err());
        assert!(session_of(&s, &old_session).is_some());

        let grant = run(s.change_password(&caller, &password(), &pw("Neues-Passwort-2027"))).unwrap();
        assert!(!grant.must_change_password);
        assert!(check(&s.sessions, &s.logins, &grant).is_ok(), "no longer bound to the password change");
        assert!(session_of(&s, &old_session).is_none(), "the other sessions ended");
        let stored = run(s.logins.get(&caller.login_id)).unwrap().unwrap();
        assert!(verify_password(&pw("Neues-Passwort-2027"), &stored.password_hash));

        let unknown = super::super::sessions::Caller { login_id: crate::ids::LoginId::parse("L-9").unwrap(), ..caller };
        let r = run(s.change_password(&unknown, &password(), &pw("Neues-Passwort-2028")));
        assert!(matches!(r, Err(AccessError::InvalidCredentials)), "{:?}", r.err());
    }

    #[test]
    fn guessing_the_current_password_is_throttled() {
        let s = service();
        let caller = crate::testkit::caller(&["1000002"]);
        for _ in 0..5 {
            let r = run(s.change_password(&caller, &pw("Falsch-2026!"), &pw("Neues-Passwort-2027")));
            assert!(matches!(r, Err(AccessError::WrongCurrentPassword)));
        }
        let r = run(s.change_password(&caller, &password(), &pw("Neues-Passwort-2027")));
        assert!(matches!(r, Err(AccessError::TooManyAttempts { .. })), "{:?}", r.err());
    }

    #[test]
    fn a_pending_login_with_the_right_password_is_told_it_waits_for_approval() {
        let pending = LoginRecord { status: LoginStatus::Pending, ..jmueller() };
        let s = service_at(NOW, &[pending]);
        let r = run(s.login("jmueller", &password(), &Default::default()));
        assert!(matches!(r, Err(AccessError::PendingApproval)), "{:?}", r.err());
        let r = run(s.login("jmueller", &pw("Falsches-Passwort-1"), &Default::default()));
        assert!(matches!(r, Err(AccessError::InvalidCredentials)), "a wrong password learns nothing: {:?}", r.err());
        assert_eq!(s.limiter.total(), 2, "only the wrong password holds slots (the address's and the deployment's)");
        // Deleted or locked: the generic answer, password or not.
        for status in [LoginStatus::Deleted, LoginStatus::Locked] {
            let s = service_at(NOW, &[LoginRecord { status, ..jmueller() }]);
            let r = run(s.login("jmueller", &password(), &Default::default()));
            assert!(matches!(r, Err(AccessError::InvalidCredentials)), "{status:?}: {:?}", r.err());
        }
    }

    /// The code of the last reset mail.
    fn mailed_code(s: &Service) -> SecretString {
        let text = s.mailer.texts().pop().expect("a reset mail");
        let code = text.split("Ihr Code zum Zurücksetzen: ").nth(1).unwrap().split('\n').next().unwrap();
        SecretString::from(code)
    }

    #[test]
    fn a_reset_is_mailed_to_an_active_login_found_by_name_or_address() {
        let s = service();
        run(s.send_reset(" jmueller ")).unwrap();
        assert_eq!(s.mailer.sent(), [("j.mueller@example.org".to_owned(), "Passwort zurücksetzen".to_owned())]);
        let code = mailed_code(&s);
        let token = run(s.tokens.get(&token_hash(code.expose_secret()))).unwrap().unwrap();
        assert_eq!(token.purpose, TokenPurpose::PasswordReset);
        assert_eq!(token.subject, "L-1");
        assert_eq!(token.expires_at, (NOW + Duration::minutes(30)).unix_timestamp());
        assert!(s.mailer.texts()[0].contains("(Benutzername jmueller)"));

        run(s.send_reset("J.Mueller@Example.org")).unwrap();
        assert_eq!(s.mailer.sent().len(), 2, "by e-mail address, in any case");
        for nobody in ["nobody", "nobody@example.org", "-x"] {
            run(s.send_reset(nobody)).unwrap();
        }
        assert_eq!(s.mailer.sent().len(), 2);

        let deleted = LoginRecord { status: LoginStatus::Deleted, ..jmueller() };
        let s = service_at(NOW, &[deleted]);
        run(s.send_reset("jmueller")).unwrap();
        assert!(s.mailer.sent().is_empty());
    }

    #[test]
    fn a_reset_code_sets_a_new_password_once_and_ends_every_session() {
        let s = service();
        let session = run(s.login("jmueller", &password(), &Default::default())).unwrap();
        run(s.send_reset("jmueller")).unwrap();
        let code = mailed_code(&s);
        // A refused password does not use the code up.
        let r = run(s.confirm_reset(&code, &pw("kurz")));
        assert!(matches!(r, Err(AccessError::NewPassword(PasswordRule::TooShort))), "{:?}", r.err());
        run(s.confirm_reset(&code, &pw("Neues-Passwort-2027"))).unwrap();
        let stored = run(s.logins.get(&jmueller().login_id)).unwrap().unwrap();
        assert!(verify_password(&pw("Neues-Passwort-2027"), &stored.password_hash));
        assert!(session_of(&s, &session).is_none());
        // Used: refused before the new password is even looked at.
        let r = run(s.confirm_reset(&code, &pw("kurz")));
        assert!(matches!(r, Err(AccessError::InvalidResetToken)), "{:?}", r.err());
        let r = run(s.confirm_reset(&pw("no-such-code"), &pw("Neues-Passwort-2028")));
        assert!(matches!(r, Err(AccessError::InvalidResetToken)), "{:?}", r.err());
    }

    #[test]
    fn a_reset_code_is_valid_for_30_minutes_for_a_reset_of_an_active_login() {
        let s = service();
        run(s.send_reset("jmueller")).unwrap();
        let code = mailed_code(&s);
        let expired = with_clock(&s, NOW + Duration::minutes(30));
        let r = run(expired.confirm_reset(&code, &pw("kurz")));
        assert!(matches!(r, Err(AccessError::InvalidResetToken)), "at its end: {:?}", r.err());
        let last_second = with_clock(&s, NOW + Duration::minutes(30) - Duration::seconds(1));
        run(last_second.confirm_reset(&code, &pw("Neues-Passwort-2027"))).unwrap();

        // A registration token is no reset code.
        let (token, hash) = super::super::sessions::new_token();
        let registration = OneTimeToken {
            token_hash: hash,
            purpose: TokenPurpose::Registration,
            subject: "L-1".into(),
            expires_at: (NOW + Duration::minutes(30)).unix_timestamp(),
            used_at: None,
        };
        run(s.tokens.put(&registration)).unwrap();
        let r = run(s.confirm_reset(&token, &pw("kurz")));
        assert!(matches!(r, Err(AccessError::InvalidResetToken)), "{:?}", r.err());

        // A login deleted since the code was mailed.
        run(s.send_reset("jmueller")).unwrap();
        let code = mailed_code(&s);
        s.logins.insert(LoginRecord { status: LoginStatus::Deleted, ..jmueller() });
        let r = run(s.confirm_reset(&code, &pw("Neues-Passwort-2028")));
        assert!(matches!(r, Err(AccessError::InvalidResetToken)), "{:?}", r.err());
    }

    #[test]
    fn the_lock_doubles_from_the_first_delay() {
        let p = LockoutPolicy::default();
        let t = datetime!(2026-12-01 08:00 UTC);
        assert_eq!(p.locked_until(7, t), t + Duration::minutes(2));
        assert_eq!(p.locked_until(9, t), t + Duration::minutes(8));
        assert_eq!(p.locked_until(10, t), t + Duration::minutes(15));
    }

    #[test]
    fn lockout_delays_grow_and_are_capped() {
        let p = LockoutPolicy::default();
        let t = datetime!(2026-12-01 08:00 UTC);
        assert_eq!(p.locked_until(4, t), t);
        assert_eq!(p.locked_until(5, t), t + Duration::seconds(30));
        assert_eq!(p.locked_until(6, t), t + Duration::seconds(60));
        assert_eq!(p.locked_until(30, t), t + Duration::minutes(15));
        // Failures possible in an hour when each comes as soon as allowed: well below 100.
        let (mut at, mut failures) = (t, 0u32);
        while at < t + Duration::hours(1) {
            failures += 1;
            at = p.locked_until(failures, at).max(at + Duration::seconds(1));
        }
        assert!(failures < 100, "{failures}");
    }

    #[test]
    fn failed_logins_from_one_address_are_bounded_across_usernames_and_successes_are_free() {
        let mut s = service();
        s.budgets = FailureBudgets { per_address_per_hour: 3, global_per_hour: 100 };
        let here = SourceAddress::of("203.0.113.5");
        for _ in 0..5 {
            run(s.login("jmueller", &password(), &here)).unwrap();
        }
        for name in ["anna", "bernd", "carla"] {
            assert!(matches!(run(s.login(name, &password(), &here)), Err(AccessError::InvalidCredentials)));
        }
        let r = run(s.login("jmueller", &password(), &here));
        assert!(
            matches!(r, Err(AccessError::TooManyAttempts { retry_after }) if retry_after == Duration::hours(1)),
            "until the hour ends: {:?}",
            r.err()
        );
        run(s.login("jmueller", &password(), &SourceAddress::of("198.51.100.1"))).unwrap();
    }

    #[test]
    fn reset_requests_are_limited_per_name_and_per_address_and_only_queued() {
        let desk = ResetDesk {
            limiter: MemoryLimiter::default(),
            queue: MemoryResetQueue::default(),
            clock: FixedClock(NOW),
            budgets: FailureBudgets::default(),
            per_name_per_hour: 3,
        };
        let here = SourceAddress::of("203.0.113.5");
        for _ in 0..3 {
            run(desk.request(" jmueller ", &here)).unwrap();
        }
        let again = run(desk.request("JMueller", &SourceAddress::of("198.51.100.1")));
        assert!(matches!(again, Err(AccessError::TooManyAttempts { .. })), "per name, from any address");
        assert_eq!(desk.queue.queued(), ["jmueller", "jmueller", "jmueller"], "three reach the worker");
        // Across names, one address has its own budget (20 by default; 3 are used).
        for n in 0..17 {
            run(desk.request(&format!("name{n}"), &here)).unwrap();
        }
        assert!(matches!(run(desk.request("name-x", &here)), Err(AccessError::TooManyAttempts { .. })));
        assert_eq!(desk.queue.queued().len(), 20);
        // The budget keys hold no name or address typed by the client.
        assert!(desk.limiter.windows().keys().all(|k| !k.contains("jmueller") && !k.contains("name")));
    }
}
