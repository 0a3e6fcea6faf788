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
use crate::identification::{
    Identification, IdentificationError, IdentificationLimits, RegistrationProof, bill_shows, decide_with_bill,
    same_address, succeeded, take_attempt,
};
use crate::ids::{CustomerNumber, IdempotencyKey};
use crate::ports::{AttemptLimiter, CustomerDirectory, RequestWriter, StoreError};
use crate::requests::{
    Activity, ActivityOwner, Channel, CustomerRequest, IdempotencyClaim, IdempotencyScope, MirrorUpdate, RequestKind,
    WriteError,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone)]
pub struct RegistrationPolicy {
    /// Identification attempts per customer number, source address and deployment.
    pub limits: IdentificationLimits,
    /// What proves the customer besides customer number and name (`RegistrationProof`).
    pub proof: RegistrationProof,
    /// New logins wait in status AUSSTEHEND until the CRM approves them.
    pub requires_approval: bool,
    pub token_lifetime: Duration,
    pub initial_password_lifetime: Duration,
    /// How to reach customer service, named in the notice to the CRM's address.
    pub customer_service: String,
}

impl Default for RegistrationPolicy {
    fn default() -> Self {
        Self {
            limits: IdentificationLimits::default(),
            proof: RegistrationProof::Name,
            requires_approval: false,
            token_lifetime: Duration::minutes(30),
            initial_password_lifetime: Duration::hours(72),
            customer_service: super::notices::DEFAULT_CUSTOMER_SERVICE.to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("customer number and name do not match")]
    NotIdentified,
    /// The deployment asks for a meter or contract account number, and none was given.
    #[error("a meter number or contract account number is required")]
    BillNumberRequired,
    #[error("too many attempts")]
    TooManyAttempts { retry_after: Duration },
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
            IdentificationError::TooManyAttempts { retry_after } => Self::TooManyAttempts { retry_after },
            IdentificationError::Store(e) => Self::Store(e),
        }
    }
}

/// The second step's input, parsed.
pub struct Registration {
    pub registration_token: SecretString,
    pub username: Username,
    pub email: EmailAddress,
    pub personal: PersonalData,
    pub idempotency: Option<(IdempotencyKey, String)>,
}

/// The personal-data step of the registration: salutation, an optional phone number, and
/// the versions of the terms of use and the privacy notice the customer accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalData {
    /// `Frau`, `Herr`, `Divers` or `Firma` (the CRM's salutations).
    pub salutation: String,
    pub phone: Option<crate::contact::PhoneNumber>,
    pub terms_of_use_version: String,
    pub privacy_notice_version: String,
}

impl PersonalData {
    /// What the record and the message hold, with when the terms were accepted.
    fn record(&self, accepted_at: OffsetDateTime) -> Value {
        json!({
            "salutation": self.salutation,
            "phone": self.phone,
            "acceptedTerms": {
                "termsOfUse": self.terms_of_use_version,
                "privacyNotice": self.privacy_notice_version,
                "acceptedAt": crate::entities::timestamp::format(accepted_at),
            },
        })
    }
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
        if self.policy.proof.needs_bill() && who.bill.is_none() {
            return Err(RegistrationError::BillNumberRequired);
        }
        let claim = partner_claim(&who.customer);
        let (allowed, partner, existing, bill) = futures::join!(
            take_attempt(&self.limiter, &self.clock, who, &self.policy.limits),
            self.directory.partner(&who.customer),
            self.logins.by_claim(&claim),
            bill_shows(&self.directory, self.policy.proof, who),
        );
        let (partner, slots) = decide_with_bill(who, allowed, partner, bill)?;
        succeeded(&self.limiter, slots).await;
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
        // With `CRM_EMAIL`, an address the CRM does not have for the customer waits for approval.
        let address_on_file = partner.email.as_deref().is_some_and(|e| same_address(e, r.email.as_str()));
        let unproven = self.policy.proof == RegistrationProof::CrmEmail && !address_on_file;
        let status = if self.policy.requires_approval || unproven { LoginStatus::Pending } else { LoginStatus::Active };
        let login = LoginRecord {
            login_id: LoginRecord::new_login_id(),
            username: r.username.as_str().to_owned(),
            // Lower-case, so that a reset finds it however it is typed.
            email: r.email.as_str().to_lowercase(),
            status,
            partner_numbers: vec![customer.clone()],
            must_change_password: true,
            password_hash: hash_password(&password),
            // A login waiting for approval gets its initial password, and its lifetime, when
            // the CRM approves it (`approval_mail`); the one hashed here is never sent.
            password_expires_at: (status == LoginStatus::Active).then(|| now + self.policy.initial_password_lifetime),
            created_at: now,
            session_generation: 0,
        };
        let answer = json!({
            "loginId": login.login_id,
            "username": login.username,
            "status": status,
            "customerNumbers": [customer],
            "initialPasswordSentTo": r.email.masked(),
        });
        let mut details =
            json!({ "loginId": login.login_id, "username": login.username, "status": status, "email": login.email });
        let personal = r.personal.record(now);
        details.as_object_mut().into_iter().for_each(|d| d.extend(personal.as_object().cloned().unwrap_or_default()));
        let request = CustomerRequest {
            request_id: crate::ids::RequestId::new_random(),
            kind: RequestKind::PortalRegistration,
            customer: Some(customer.clone()),
            channel: Channel::Portal,
            submitted_at: now,
            record: {
                let mut record =
                    json!({ "loginId": login.login_id, "username": login.username, "loginStatus": status });
                record
                    .as_object_mut()
                    .into_iter()
                    .for_each(|d| d.extend(personal.as_object().cloned().unwrap_or_default()));
                record
            },
            activities: vec![Activity {
                owner: ActivityOwner::Customer(customer.clone()),
                activity_type: "PORTAL_REGISTRATION",
                subject: format!("Registrierung im Kundenportal ({})", login.username),
                text: None,
                route_to: None,
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
        let name = partner.first_name.as_deref().unwrap_or(&partner.last_name);
        let text = if status == LoginStatus::Pending {
            format!(
                "Guten Tag {name},\n\nIhre Registrierung im Kundenportal (Benutzername {}) ist eingegangen und wird \
                 geprüft. Sobald Ihr Zugang freigeschaltet ist, erhalten Sie Ihr Initialpasswort in einer weiteren \
                 E-Mail.\n",
                login.username
            )
        } else {
            initial_password_text(name, &login.username, &password, self.policy.initial_password_lifetime)
        };
        let mail = Mail {
            to: login.email.clone(),
            subject: "Ihr Zugang zum Kundenportal".into(),
            text: SecretString::from(text),
        };
        if let Err(e) = self.mailer.send(mail).await {
            // The login exists; the customer can get a password by reset once it is active.
            tracing::error!(login_id = %login.login_id, error = %e, "initial password mail not sent");
        }
        // The customer hears of it at the address the CRM has, if that is another one.
        super::notices::tell_crm_address(
            &self.mailer,
            &partner,
            &login.email,
            super::notices::Event::Registered { username: &login.username, at: now },
            &self.policy.customer_service,
        )
        .await;
        Ok(answer)
    }
}

/// The initial-password mail's text: username, password and how long it is valid.
fn initial_password_text(name: &str, username: &str, password: &SecretString, lifetime: Duration) -> String {
    format!(
        "Guten Tag {name},\n\nIhr Zugang zum Kundenportal ist eingerichtet.\n\nBenutzername: {username}\n\
         Initialpasswort: {}\n\nDas Initialpasswort ist {} Stunden gültig und muss bei der ersten Anmeldung \
         geändert werden.\n",
        password.expose_secret(),
        lifetime.whole_hours(),
    )
}

/// What the CRM's approval of a login that waited for it brings: a new initial password
/// (stored as its hash) valid from the approval on, and the mail that carries it.
pub struct Approval {
    pub password_hash: String,
    pub password_expires_at: OffsetDateTime,
    pub mail: Mail,
}

pub fn approval(email: &str, username: &str, now: OffsetDateTime, lifetime: Duration) -> Approval {
    let password = initial_password();
    Approval {
        password_hash: hash_password(&password),
        password_expires_at: now + lifetime,
        mail: Mail {
            to: email.to_owned(),
            subject: "Ihr Zugang zum Kundenportal ist freigeschaltet".into(),
            text: initial_password_text(username, username, &password, lifetime).into(),
        },
    }
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::identification::BillNumber;
    use crate::identity::credentials::verify_password;
    use crate::memory::{MemoryDirectory, MemoryLimiter, MemoryLogins, MemoryMailer, MemoryTokens, MemoryWriter};
    use crate::testkit::{NOW, customer, demo, login, run};

    type Service = RegistrationService<
        MemoryDirectory,
        MemoryLimiter,
        MemoryLogins,
        MemoryTokens,
        MemoryWriter,
        MemoryMailer,
        FixedClock,
    >;

    fn service() -> Service {
        RegistrationService {
            directory: MemoryDirectory::new(demo()),
            limiter: MemoryLimiter::default(),
            logins: MemoryLogins::default(),
            tokens: MemoryTokens::default(),
            writer: MemoryWriter::default(),
            mailer: MemoryMailer::default(),
            clock: FixedClock(NOW),
            policy: RegistrationPolicy::default(),
        }
    }

    fn petra() -> Identification {
        Identification { customer: customer("1000005"), name: "schulz".into(), source: Default::default(), bill: None }
    }

    fn registration(token: &SecretString, username: &str, key: Option<(&str, &str)>) -> Registration {
        Registration {
            registration_token: token.clone(),
            username: Username::parse(username).unwrap(),
            email: EmailAddress::parse("Petra.Schulz@Example.org").unwrap(),
            personal: crate::testkit::personal(),
            idempotency: key.map(|(k, fp)| (IdempotencyKey::parse(k).unwrap(), fp.to_owned())),
        }
    }

    #[test]
    fn verifying_hands_out_a_registration_token_for_30_minutes() {
        let s = service();
        let verified = run(s.verify(&petra())).unwrap();
        assert_eq!(verified.expires_at, NOW + Duration::minutes(30));
        let stored = run(s.tokens.get(&token_hash(verified.registration_token.expose_secret()))).unwrap().unwrap();
        assert_eq!(
            (stored.purpose, stored.subject.as_str(), stored.expires_at, stored.used_at),
            (TokenPurpose::Registration, "1000005", (NOW + Duration::minutes(30)).unix_timestamp(), None)
        );
        let wrong = Identification { name: "Schulze".into(), ..petra() };
        assert!(matches!(run(s.verify(&wrong)), Err(RegistrationError::NotIdentified)));
    }

    #[test]
    fn a_customer_with_a_login_cannot_register_again_unless_it_was_deleted() {
        let s = service();
        s.logins.insert(login(&["1000005"], "p@example.org"));
        assert!(matches!(run(s.verify(&petra())), Err(RegistrationError::AlreadyRegistered)));
        for status in [LoginStatus::Pending, LoginStatus::Locked] {
            s.logins.insert(LoginRecord { status, ..login(&["1000005"], "p@example.org") });
            assert!(matches!(run(s.verify(&petra())), Err(RegistrationError::AlreadyRegistered)), "{status:?}");
        }
        s.logins.insert(LoginRecord { status: LoginStatus::Deleted, ..login(&["1000005"], "p@example.org") });
        assert!(run(s.verify(&petra())).is_ok());
    }

    #[test]
    fn a_registration_with_another_address_is_told_to_the_crms_address() {
        let s = service();
        let token = run(s.verify(&petra())).unwrap().registration_token;
        let stranger = Registration {
            email: EmailAddress::parse("fremd@example.net").unwrap(),
            ..registration(&token, "fremd", None)
        };
        let answer = run(s.register(stranger)).unwrap();
        assert_eq!(answer["status"], "AKTIV", "customer number and name are enough by default");
        let to: Vec<String> = s.mailer.sent().into_iter().map(|(to, _)| to).collect();
        assert_eq!(to, ["fremd@example.net", "petra.schulz@example.org"]);
        let notice = &s.mailer.texts()[1];
        assert!(notice.contains("Kundennummer 1000005 ein Zugang zum Kundenportal registriert"), "{notice}");
        assert!(notice.contains("(Benutzername fremd)") && !notice.contains("Initialpasswort"), "{notice}");
    }

    #[test]
    fn with_crm_email_only_the_crms_address_makes_an_active_login() {
        let mut s = service();
        s.policy.proof = RegistrationProof::CrmEmail;
        let token = run(s.verify(&petra())).unwrap().registration_token;
        let stranger = Registration {
            email: EmailAddress::parse("fremd@example.net").unwrap(),
            ..registration(&token, "fremd", None)
        };
        assert_eq!(run(s.register(stranger)).unwrap()["status"], "AUSSTEHEND", "waits for the CRM");
        // The initial password comes with the approval, not before: this mail only says so.
        let waiting = &s.mailer.texts()[0];
        assert!(waiting.contains("wird geprüft") && !waiting.contains("Initialpasswort:"), "{waiting}");
        let committed = s.writer.committed();
        let created = committed[0].mirror_updates.iter().find_map(|u| match u {
            MirrorUpdate::CreateLogin(login) => Some(login.clone()),
            _ => None,
        });
        assert_eq!(created.unwrap().password_expires_at, None, "its 72 hours start with the approval");
        let approved = approval("fremd@example.net", "fremd", NOW, Duration::hours(72));
        assert_eq!(approved.password_expires_at, NOW + Duration::hours(72));
        assert_eq!(approved.mail.to, "fremd@example.net");
        let text = approved.mail.text.expose_secret();
        let password = text.lines().find_map(|l| l.strip_prefix("Initialpasswort: ")).unwrap();
        assert!(crate::identity::credentials::verify_password(
            &SecretString::from(password.to_owned()),
            &approved.password_hash
        ));
        assert!(text.contains("72 Stunden"), "{text}");

        let mut s = service();
        s.policy.proof = RegistrationProof::CrmEmail;
        let token = run(s.verify(&petra())).unwrap().registration_token;
        // The CRM's address in another case.
        assert_eq!(run(s.register(registration(&token, "pschulz", None))).unwrap()["status"], "AKTIV");
        assert_eq!(s.mailer.sent().len(), 1, "the initial password only: the address is the CRM's");
    }

    #[test]
    fn with_meter_or_account_verifying_needs_a_number_of_the_customers_bill() {
        let mut s = service();
        s.policy.proof = RegistrationProof::MeterOrAccount;
        assert!(matches!(run(s.verify(&petra())), Err(RegistrationError::BillNumberRequired)));
        let meter = |m: &str| Some(BillNumber::Meter(crate::ids::MeterNumber::parse(m).unwrap()));
        let account = |a: &str| Some(BillNumber::Account(crate::ids::AccountNumber::parse(a).unwrap()));
        for bill in [meter("1EMH0012345678"), account("800000001")] {
            assert!(matches!(run(s.verify(&petra().with_bill(bill))), Err(RegistrationError::NotIdentified)));
        }
        assert!(run(s.verify(&petra().with_bill(meter("1EBZ0012398765")))).is_ok());
        assert!(run(s.verify(&petra().with_bill(account("800000006")))).is_ok());
    }

    #[test]
    fn attempts_are_limited_per_customer_number() {
        let s = service();
        for _ in 0..10 {
            assert!(matches!(
                run(s.verify(&Identification { name: "x".into(), ..petra() })),
                Err(RegistrationError::NotIdentified)
            ));
        }
        assert!(matches!(run(s.verify(&petra())), Err(RegistrationError::TooManyAttempts { .. })));
    }

    #[test]
    fn registering_creates_the_login_with_its_claims_and_mails_the_initial_password() {
        let s = service();
        let token = run(s.verify(&petra())).unwrap().registration_token;
        let answer = run(s.register(registration(&token, "PSchulz", None))).unwrap();
        assert_eq!(answer["username"], "pschulz");
        assert_eq!(answer["status"], "AKTIV");
        assert_eq!(answer["customerNumbers"], json!(["1000005"]));
        assert_eq!(answer["initialPasswordSentTo"], "P***@Example.org");
        let committed = s.writer.committed();
        let r = &committed[0];
        assert_eq!(
            (r.kind, r.channel, r.customer.as_ref().unwrap().as_str()),
            (RequestKind::PortalRegistration, Channel::Portal, "1000005")
        );
        assert_eq!(r.activities[0].subject, "Registrierung im Kundenportal (pschulz)");
        let [
            MirrorUpdate::Claim { key: username, .. },
            MirrorUpdate::Claim { key: partner, .. },
            MirrorUpdate::ConsumeToken { token_hash: consumed, purpose: TokenPurpose::Registration, now_epoch },
            MirrorUpdate::CreateLogin(login),
        ] = r.mirror_updates.as_slice()
        else {
            panic!("{:?}", r.mirror_updates)
        };
        assert_eq!((username.as_str(), partner.as_str()), ("USERNAME#pschulz", "PARTNER#1000005"));
        assert_eq!((consumed.clone(), *now_epoch), (token_hash(token.expose_secret()), NOW.unix_timestamp()));
        assert_eq!(answer["loginId"], json!(login.login_id));
        assert_eq!(login.email, "petra.schulz@example.org");
        assert_eq!(login.status, LoginStatus::Active);
        assert!(login.must_change_password);
        assert_eq!(login.password_expires_at, Some(NOW + Duration::hours(72)));
        assert_eq!(login.created_at, NOW);
        assert_eq!(r.record["loginStatus"], "AKTIV");
        assert_eq!(r.payload["email"], "petra.schulz@example.org");
        assert_eq!(
            s.mailer.sent(),
            [("petra.schulz@example.org".to_owned(), "Ihr Zugang zum Kundenportal".to_owned())]
        );
        let text = &s.mailer.texts()[0];
        assert!(
            text.starts_with("Guten Tag Petra,")
                && text.contains("Benutzername: pschulz")
                && !text.contains("freigeschaltet"),
            "{text}"
        );
        let password = text.split("Initialpasswort: ").nth(1).unwrap().split('\n').next().unwrap();
        assert!(verify_password(&SecretString::from(password), &login.password_hash));
    }

    #[test]
    fn with_approval_the_login_waits() {
        let mut s = service();
        s.policy.requires_approval = true;
        let token = run(s.verify(&petra())).unwrap().registration_token;
        let answer = run(s.register(registration(&token, "pschulz", None))).unwrap();
        assert_eq!(answer["status"], "AUSSTEHEND");
        let text = &s.mailer.texts()[0];
        assert!(text.contains("wird geprüft") && !text.contains("Initialpasswort:"), "{text}");
    }

    #[test]
    fn only_an_unused_unexpired_registration_token_registers() {
        let s = service();
        let token = run(s.verify(&petra())).unwrap().registration_token;
        let hash = token_hash(token.expose_secret());
        let stored = run(s.tokens.get(&hash)).unwrap().unwrap();
        let register = |t: OneTimeToken, at: OffsetDateTime| {
            run(s.tokens.put(&t)).unwrap();
            let at_time = RegistrationService { clock: FixedClock(at), ..service_sharing(&s) };
            run(at_time.register(registration(&token, "pschulz", None)))
        };
        let end = NOW + Duration::minutes(30);
        assert!(matches!(register(stored.clone(), end), Err(RegistrationError::InvalidToken)), "at its end");
        let used = OneTimeToken { used_at: Some(NOW.unix_timestamp()), ..stored.clone() };
        assert!(matches!(register(used, NOW), Err(RegistrationError::InvalidToken)));
        let reset = OneTimeToken { purpose: TokenPurpose::PasswordReset, ..stored.clone() };
        assert!(matches!(register(reset, NOW), Err(RegistrationError::InvalidToken)));
        let unknown_customer = OneTimeToken { subject: "1999999".into(), ..stored.clone() };
        assert!(matches!(register(unknown_customer, NOW), Err(RegistrationError::InvalidToken)));
        assert!(matches!(
            run(s.register(registration(&SecretString::from("nope"), "pschulz", None))),
            Err(RegistrationError::InvalidToken)
        ));
        assert!(s.writer.committed().is_empty());
        register(stored, end - Duration::seconds(1)).unwrap();
    }

    fn service_sharing(s: &Service) -> Service {
        RegistrationService {
            directory: s.directory.clone(),
            limiter: s.limiter.clone(),
            logins: s.logins.clone(),
            tokens: s.tokens.clone(),
            writer: s.writer.clone(),
            mailer: s.mailer.clone(),
            clock: FixedClock(NOW),
            policy: s.policy.clone(),
        }
    }

    #[test]
    fn taken_usernames_and_customers_are_refused_before_and_at_the_commit() {
        let s = service();
        let token = run(s.verify(&petra())).unwrap().registration_token;
        s.logins.insert(LoginRecord { username: "pschulz".into(), ..login(&["1000001"], "x@example.org") });
        assert!(matches!(
            run(s.register(registration(&token, "pschulz", None))),
            Err(RegistrationError::UsernameTaken)
        ));
        // The customer registered meanwhile (another login now holds the customer number).
        let other = LoginRecord {
            login_id: crate::ids::LoginId::parse("L-2").unwrap(),
            username: "petra".into(),
            ..login(&["1000005"], "x@example.org")
        };
        s.logins.insert(other);
        assert!(matches!(
            run(s.register(registration(&token, "pschulz2", None))),
            Err(RegistrationError::AlreadyRegistered)
        ));

        let s = service();
        let token = run(s.verify(&petra())).unwrap().registration_token;
        let refusals: Vec<(WriteError, &str)> = vec![
            (WriteError::ClaimTaken("USERNAME#pschulz".into()), "UsernameTaken"),
            (WriteError::ClaimTaken("PARTNER#1000005".into()), "AlreadyRegistered"),
            (WriteError::TokenNotUsable, "InvalidToken"),
            (WriteError::IdempotencyKeyTaken, "InvalidToken"),
            (WriteError::Conflict, "InvalidToken"),
            (WriteError::Store(StoreError("down".into())), "Store(StoreError(\"down\"))"),
        ];
        for (refusal, expected) in refusals {
            s.writer.refuse_next_commit(refusal);
            let e = run(s.register(registration(&token, "pschulz", None))).err().unwrap();
            assert_eq!(format!("{e:?}"), expected);
        }
        assert!(s.mailer.sent().is_empty());
    }

    #[test]
    fn a_retry_gets_the_first_answer() {
        let s = service();
        let token = run(s.verify(&petra())).unwrap().registration_token;
        let first = run(s.register(registration(&token, "pschulz", Some(("k", "fp"))))).unwrap();
        let scope = s.writer.committed()[0].idempotency.clone().unwrap().scope;
        assert_eq!(scope.as_str(), format!("registration#{}#k", token_hash(token.expose_secret())));
        assert_eq!(run(s.register(registration(&token, "pschulz", Some(("k", "fp"))))).unwrap(), first);
        assert!(matches!(
            run(s.register(registration(&token, "pschulz", Some(("k", "other"))))),
            Err(RegistrationError::IdempotencyKeyReused)
        ));
        assert_eq!((s.writer.committed().len(), s.mailer.sent().len()), (1, 1));
    }
}
