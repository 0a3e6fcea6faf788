//! Capability 1: registration, in the seed's steps — verify customer number and name,
//! then username and e-mail, reviewed by the customer in the portal and confirmed with
//! `POST /v1/registrations`. The login is created (active, or pending approval by the
//! CRM), and an e-mail carries a random initial password that must be changed at the
//! first login.

use super::credentials::{EmailAddress, Username, hash_password, initial_password};
use super::sessions::{new_token, token_hash};
use super::{
    LoginRecord, LoginStore, Mail, Mailer, OneTimeToken, TokenPurpose, TokenStore, partner_claim, username_claim,
};
use crate::clock::Clock;
use crate::entities::LoginStatus;
use crate::identification::{Identification, IdentificationError, decide, take_attempt};
use crate::ids::{CustomerNumber, IdempotencyKey};
use crate::ports::{AttemptLimiter, CustomerDirectory, RequestWriter, StoreError};
use crate::requests::{
    Activity, ActivityOwner, Channel, CustomerRequest, IdempotencyClaim, IdempotencyScope, MirrorUpdate, RequestKind,
    WriteError,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy)]
pub struct RegistrationPolicy {
    pub attempts_per_hour: u32,
    /// New logins wait in status AUSSTEHEND until the CRM approves them.
    pub requires_approval: bool,
    pub token_lifetime: Duration,
    pub initial_password_lifetime: Duration,
}

impl Default for RegistrationPolicy {
    fn default() -> Self {
        Self {
            attempts_per_hour: 10,
            requires_approval: false,
            token_lifetime: Duration::minutes(30),
            initial_password_lifetime: Duration::hours(72),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("customer number and name do not match")]
    NotIdentified,
    #[error("too many attempts for this customer number")]
    TooManyAttempts,
    /// The customer already has a portal login (active or pending).
    #[error("the customer already has a portal login")]
    AlreadyRegistered,
    #[error("the username is taken")]
    UsernameTaken,
    #[error("the registration token is not valid")]
    InvalidToken,
    #[error("the idempotency key was used for another request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<IdentificationError> for RegistrationError {
    fn from(e: IdentificationError) -> Self {
        match e {
            IdentificationError::NotIdentified => Self::NotIdentified,
            IdentificationError::TooManyAttempts => Self::TooManyAttempts,
            IdentificationError::Store(e) => Self::Store(e),
        }
    }
}

/// The second step's input, parsed.
pub struct Registration {
    pub registration_token: SecretString,
    pub username: Username,
    pub email: EmailAddress,
    pub idempotency: Option<(IdempotencyKey, String)>,
}

pub struct VerifiedCustomer {
    pub registration_token: SecretString,
    pub expires_at: OffsetDateTime,
}

pub struct RegistrationService<D, L, G, T, W, M, C> {
    pub directory: D,
    pub limiter: L,
    pub logins: G,
    pub tokens: T,
    pub writer: W,
    pub mailer: M,
    pub clock: C,
    pub policy: RegistrationPolicy,
}

/// Whether a login still stands in the way of a new registration.
fn holds(login: &Option<LoginRecord>) -> bool {
    login.as_ref().is_some_and(|l| l.status != LoginStatus::Deleted)
}

impl<D, L, G, T, W, M, C> RegistrationService<D, L, G, T, W, M, C>
where
    D: CustomerDirectory,
    L: AttemptLimiter,
    G: LoginStore,
    T: TokenStore,
    W: RequestWriter,
    M: Mailer,
    C: Clock,
{
    /// Step 1: customer number and name. Returns a short-lived registration token.
    pub async fn verify(&self, who: &Identification) -> Result<VerifiedCustomer, RegistrationError> {
        let claim = partner_claim(&who.customer);
        let (allowed, partner, existing) = futures::join!(
            take_attempt(&self.limiter, &self.clock, &who.customer, self.policy.attempts_per_hour),
            self.directory.partner(&who.customer),
            self.logins.by_claim(&claim),
        );
        let partner = decide(who, allowed, partner)?;
        if holds(&existing?) {
            return Err(RegistrationError::AlreadyRegistered);
        }
        let now = self.clock.now();
        let expires_at = now + self.policy.token_lifetime;
        let (token, hash) = new_token();
        self.tokens
            .put(&OneTimeToken {
                token_hash: hash,
                purpose: TokenPurpose::Registration,
                subject: partner.partner_number.to_string(),
                expires_at: expires_at.unix_timestamp(),
                used_at: None,
            })
            .await?;
        Ok(VerifiedCustomer { registration_token: token, expires_at })
    }

    /// Step 3 (confirm): creates the login and mails the initial password.
    pub async fn register(&self, r: Registration) -> Result<Value, RegistrationError> {
        let hash = token_hash(r.registration_token.expose_secret());
        let now = self.clock.now();
        let claim = r.idempotency.as_ref().map(|(key, fingerprint)| IdempotencyClaim {
            scope: IdempotencyScope::new("registration", &hash, key),
            fingerprint: fingerprint.clone(),
        });
        if let Some(c) = &claim
            && let Some(earlier) = self.writer.find_answer(&c.scope).await?
        {
            return if earlier.fingerprint == c.fingerprint {
                Ok(earlier.body)
            } else {
                Err(RegistrationError::IdempotencyKeyReused)
            };
        }
        let token = self.tokens.get(&hash).await?;
        let token = token
            .filter(|t| {
                t.purpose == TokenPurpose::Registration && t.used_at.is_none() && t.expires_at > now.unix_timestamp()
            })
            .ok_or(RegistrationError::InvalidToken)?;
        let customer = CustomerNumber::parse(&token.subject).map_err(|e| StoreError(e.to_string()))?;
        let (name_claim, customer_claim) = (username_claim(r.username.as_str()), partner_claim(&customer));
        let (partner, taken, existing) = futures::join!(
            self.directory.partner(&customer),
            self.logins.by_claim(&name_claim),
            self.logins.by_claim(&customer_claim),
        );
        let partner = partner?.ok_or(RegistrationError::InvalidToken)?;
        if taken?.is_some() {
            return Err(RegistrationError::UsernameTaken);
        }
        if holds(&existing?) {
            return Err(RegistrationError::AlreadyRegistered);
        }

        let password = initial_password();
        let status = if self.policy.requires_approval { LoginStatus::Pending } else { LoginStatus::Active };
        let login = LoginRecord {
            login_id: LoginRecord::new_login_id(),
            username: r.username.as_str().to_owned(),
            // Lower-case, so that a reset finds it however it is typed.
            email: r.email.as_str().to_lowercase(),
            status,
            partner_numbers: vec![customer.clone()],
            must_change_password: true,
            password_hash: hash_password(&password),
            password_expires_at: Some(now + self.policy.initial_password_lifetime),
            created_at: now,
        };
        let answer = json!({
            "loginId": login.login_id,
            "username": login.username,
            "status": status,
            "customerNumbers": [customer],
            "initialPasswordSentTo": r.email.masked(),
        });
        let details =
            json!({ "loginId": login.login_id, "username": login.username, "status": status, "email": login.email });
        let request = CustomerRequest {
            request_id: crate::ids::RequestId::new_random(),
            kind: RequestKind::PortalRegistration,
            customer: Some(customer.clone()),
            channel: Channel::Portal,
            submitted_at: now,
            record: json!({ "loginId": login.login_id, "username": login.username, "loginStatus": status }),
            activities: vec![Activity {
                owner: ActivityOwner::Customer(customer.clone()),
                activity_type: "PORTAL_REGISTRATION",
                subject: format!("Registrierung im Kundenportal ({})", login.username),
            }],
            mirror_updates: vec![
                MirrorUpdate::Claim { key: username_claim(&login.username), login_id: login.login_id.clone() },
                MirrorUpdate::Claim { key: partner_claim(&customer), login_id: login.login_id.clone() },
                MirrorUpdate::ConsumeToken {
                    token_hash: hash,
                    purpose: TokenPurpose::Registration,
                    now_epoch: now.unix_timestamp(),
                },
                MirrorUpdate::CreateLogin(Box::new(login.clone())),
            ],
            payload: details,
            idempotency: claim,
            answer: answer.clone(),
        };
        match self.writer.commit(request).await {
            Ok(_) => {}
            Err(WriteError::ClaimTaken(key)) if key.starts_with("USERNAME#") => {
                return Err(RegistrationError::UsernameTaken);
            }
            Err(WriteError::ClaimTaken(_)) => return Err(RegistrationError::AlreadyRegistered),
            Err(WriteError::TokenNotUsable | WriteError::IdempotencyKeyTaken) => {
                return Err(RegistrationError::InvalidToken);
            }
            Err(WriteError::Conflict) => return Err(RegistrationError::InvalidToken),
            Err(WriteError::Store(e)) => return Err(e.into()),
        }
        let text = format!(
            "Guten Tag {},\n\nIhr Zugang zum Kundenportal ist eingerichtet{}.\n\nBenutzername: {}\nInitialpasswort: {}\n\n\
             Das Initialpasswort ist 72 Stunden gültig und muss bei der ersten Anmeldung geändert werden.\n",
            partner.first_name.as_deref().unwrap_or(&partner.last_name),
            if status == LoginStatus::Pending { " und wird nach Prüfung freigeschaltet" } else { "" },
            login.username,
            password.expose_secret(),
        );
        let mail = Mail {
            to: login.email.clone(),
            subject: "Ihr Zugang zum Kundenportal".into(),
            text: SecretString::from(text),
        };
        if let Err(e) = self.mailer.send(mail).await {
            // The login exists; the customer can get a password by reset once it is active.
            tracing::error!(login_id = %login.login_id, error = %e, "initial password mail not sent");
        }
        Ok(answer)
    }
}
