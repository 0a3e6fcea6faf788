//! Capability 2: login, logout, password change, password reset.

use super::credentials::{DUMMY_HASH, NewPassword, PasswordRule, Username, verify_password};
use super::sessions::{Caller, SessionPolicy, new_token, open_session, token_hash};
use super::{
    LoginRecord, LoginStore, LoginThrottle, Mail, Mailer, OneTimeToken, SessionStore, Throttled, TokenPurpose,
    TokenStore, username_claim,
};
use crate::clock::Clock;
use crate::entities::LoginStatus;
use crate::ports::StoreError;
use secrecy::{ExposeSecret, SecretString};
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

pub struct AccessService<G, S, T, M, H, C> {
    pub logins: G,
    pub sessions: S,
    pub tokens: T,
    pub mailer: M,
    pub throttle: H,
    pub clock: C,
    pub session_policy: SessionPolicy,
    pub lockout: LockoutPolicy,
}

const RESET_TOKEN_LIFETIME: Duration = Duration::minutes(30);

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

impl<G: LoginStore, S: SessionStore, T: TokenStore, M: Mailer, H: LoginThrottle, C: Clock>
    AccessService<G, S, T, M, H, C>
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

    /// Login. Every path takes the same steps: one throttled attempt per username (known
    /// or not), one argon2id verification (against a dummy hash for an unknown user), and
    /// one generic failure answer.
    pub async fn login(&self, username: &str, password: &SecretString) -> Result<SessionGrant, AccessError> {
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
        if login.status != LoginStatus::Active {
            return Err(AccessError::InvalidCredentials);
        }
        if login.must_change_password && login.password_expires_at.is_some_and(|end| self.clock.now() > end) {
            return Err(AccessError::InitialPasswordExpired);
        }
        self.grant(&login).await
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
        self.logins.set_password(&login.login_id, &new_password.hash()).await?;
        self.sessions.delete_all(&login.login_id).await?;
        let changed = LoginRecord { must_change_password: false, password_expires_at: None, ..login };
        self.grant(&changed).await
    }

    /// Starts a reset by username or e-mail address. The answer is the same whether or
    /// not a login was found; a found, active login gets an e-mail with a single-use token.
    pub async fn request_reset(&self, username_or_email: &str) -> Result<(), AccessError> {
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
        self.sessions.delete_all(&login.login_id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

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
}
