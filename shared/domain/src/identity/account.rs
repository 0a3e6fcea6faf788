//! Capability 12: the account — the login and its customer numbers, adding a further
//! customer number, and deletion (status GELÖSCHT; the record stays, every session ends).

use super::notices::{Event, tell_crm_address};
use super::registration::RegistrationPolicy;
use super::sessions::Caller;
use super::{LoginRecord, LoginStore, Mailer, SessionStore, partner_claim};
use crate::clock::Clock;
use crate::entities::{LoginStatus, timestamp};
use crate::identification::{
    Identification, IdentificationError, RegistrationProof, bill_shows, decide_with_bill, same_address, succeeded,
    take_attempt,
};
use crate::ids::{CustomerNumber, LoginId, RequestId};
use crate::ports::{AttemptLimiter, CustomerDirectory, RequestWriter, StoreError};
use crate::requests::{Activity, ActivityOwner, Channel, CustomerRequest, MirrorUpdate, RequestKind, WriteError};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("customer number and name do not match")]
    NotIdentified,
    /// The deployment asks for a meter or contract account number, and none was given.
    #[error("a meter number or contract account number is required")]
    BillNumberRequired,
    /// With `RegistrationProof=CRM_EMAIL`, the login's address is not the one the CRM has.
    #[error("the login's e-mail address is not the customer's address on file")]
    EmailNotOnFile,
    #[error("too many attempts for this customer number")]
    TooManyAttempts { retry_after: time::Duration },
    /// The customer number belongs to another portal login.
    #[error("the customer already has a portal login")]
    AlreadyRegistered,
    #[error("the login changed concurrently")]
    Conflict,
    #[error("the login does not exist")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<IdentificationError> for AccountError {
    fn from(e: IdentificationError) -> Self {
        match e {
            IdentificationError::NotIdentified => Self::NotIdentified,
            IdentificationError::TooManyAttempts { retry_after } => Self::TooManyAttempts { retry_after },
            IdentificationError::Store(e) => Self::Store(e),
        }
    }
}

/// What `GET /v1/me` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub login_id: LoginId,
    pub username: String,
    pub email: String,
    pub status: LoginStatus,
    pub customer_numbers: Vec<CustomerNumber>,
    pub must_change_password: bool,
    #[serde(with = "timestamp::serde")]
    pub created_at: OffsetDateTime,
}

impl From<LoginRecord> for AccountView {
    fn from(l: LoginRecord) -> Self {
        Self {
            login_id: l.login_id,
            username: l.username,
            email: l.email,
            status: l.status,
            customer_numbers: l.partner_numbers,
            must_change_password: l.must_change_password,
            created_at: l.created_at,
        }
    }
}

pub struct AccountService<D, L, G, S, W, M, C> {
    pub directory: D,
    pub limiter: L,
    pub logins: G,
    pub sessions: S,
    pub writer: W,
    pub mailer: M,
    pub clock: C,
    /// A further customer number is proven like a registration: the same limits and proof.
    pub policy: RegistrationPolicy,
}

fn request(kind: RequestKind, customer: &CustomerNumber, login: &LoginRecord, now: OffsetDateTime) -> CustomerRequest {
    let details = json!({ "loginId": login.login_id, "username": login.username });
    CustomerRequest {
        request_id: RequestId::new_random(),
        kind,
        customer: Some(customer.clone()),
        channel: Channel::Portal,
        submitted_at: now,
        record: details.clone(),
        activities: Vec::new(),
        mirror_updates: Vec::new(),
        payload: details,
        idempotency: None,
        answer: json!({}),
    }
}

impl<D, L, G, S, W, M, C> AccountService<D, L, G, S, W, M, C>
where
    D: CustomerDirectory,
    L: AttemptLimiter,
    G: LoginStore,
    S: SessionStore,
    W: RequestWriter,
    M: Mailer,
    C: Clock,
{
    async fn login(&self, caller: &Caller) -> Result<LoginRecord, AccountError> {
        self.logins.get(&caller.login_id).await?.ok_or(AccountError::NotFound)
    }

    pub async fn me(&self, caller: &Caller) -> Result<AccountView, AccountError> {
        Ok(self.login(caller).await?.into())
    }

    /// Deletes the account: status GELÖSCHT (never a physical delete), the customer numbers
    /// are free for a new registration, every session ends.
    pub async fn delete(&self, caller: &Caller) -> Result<(), AccountError> {
        let login = self.login(caller).await?;
        let first = login.partner_numbers.first().cloned().ok_or(AccountError::NotFound)?;
        let mut r = request(RequestKind::AccountDeletion, &first, &login, self.clock.now());
        r.activities = login
            .partner_numbers
            .iter()
            .map(|p| Activity {
                owner: ActivityOwner::Customer(p.clone()),
                activity_type: "PORTAL_ACCOUNT_DELETED",
                subject: format!("Benutzerkonto im Kundenportal gelöscht ({})", login.username),
                text: None,
                route_to: None,
            })
            .collect();
        r.mirror_updates = std::iter::once(MirrorUpdate::SetLoginStatus {
            login_id: login.login_id.clone(),
            status: LoginStatus::Deleted,
        })
        .chain(
            login
                .partner_numbers
                .iter()
                .map(|p| MirrorUpdate::ReleaseClaim { key: partner_claim(p), login_id: login.login_id.clone() }),
        )
        .collect();
        self.writer.commit(r).await.map_err(write_error)?;
        super::access::end_sessions(&self.sessions, &login.login_id).await;
        Ok(())
    }

    /// Adds a further customer number, verified like a registration.
    pub async fn add_customer_number(
        &self,
        caller: &Caller,
        who: &Identification,
    ) -> Result<AccountView, AccountError> {
        if self.policy.proof.needs_bill() && who.bill.is_none() {
            return Err(AccountError::BillNumberRequired);
        }
        let claim = partner_claim(&who.customer);
        let (allowed, partner, holder, login, bill) = futures::join!(
            take_attempt(&self.limiter, &self.clock, who, &self.policy.limits),
            self.directory.partner(&who.customer),
            self.logins.by_claim(&claim),
            self.login(caller),
            bill_shows(&self.directory, self.policy.proof, who),
        );
        let (partner, slots) = decide_with_bill(who, allowed, partner, bill)?;
        succeeded(&self.limiter, slots).await;
        let mut login = login?;
        if self.policy.proof == RegistrationProof::CrmEmail
            && !partner.email.as_deref().is_some_and(|e| same_address(e, &login.email))
        {
            return Err(AccountError::EmailNotOnFile);
        }
        if login.partner_numbers.contains(&partner.partner_number) {
            return Ok(login.into());
        }
        if holder?.is_some_and(|h| h.status != LoginStatus::Deleted && h.login_id != login.login_id) {
            return Err(AccountError::AlreadyRegistered);
        }
        let now = self.clock.now();
        let mut r = request(RequestKind::CustomerNumberAdded, &partner.partner_number, &login, now);
        r.activities = vec![Activity {
            owner: ActivityOwner::Customer(partner.partner_number.clone()),
            activity_type: "PORTAL_CUSTOMER_NUMBER_ADDED",
            subject: format!("Kundennummer zum Portalzugang {} hinzugefügt", login.username),
            text: None,
            route_to: None,
        }];
        r.mirror_updates = vec![
            MirrorUpdate::Claim { key: partner_claim(&partner.partner_number), login_id: login.login_id.clone() },
            MirrorUpdate::AddLoginPartner {
                login_id: login.login_id.clone(),
                customer: partner.partner_number.clone(),
            },
        ];
        self.writer.commit(r).await.map_err(write_error)?;
        let event = Event::NumberAdded { username: &login.username, at: now };
        tell_crm_address(&self.mailer, &partner, &login.email, event, &self.policy.customer_service).await;
        // Open sessions see the new customer number at once: the session check reads it
        // from the login.
        login.partner_numbers.push(partner.partner_number);
        Ok(login.into())
    }
}

fn write_error(e: WriteError) -> AccountError {
    match e {
        WriteError::ClaimTaken(_) => AccountError::AlreadyRegistered,
        WriteError::Store(e) => AccountError::Store(e),
        WriteError::Conflict | WriteError::IdempotencyKeyTaken | WriteError::TokenNotUsable => AccountError::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::identification::BillNumber;
    use crate::identity::SessionRecord;
    use crate::memory::{MemoryDirectory, MemoryLimiter, MemoryLogins, MemoryMailer, MemorySessions, MemoryWriter};
    use crate::testkit::{NOW, caller, customer, demo, login, run};

    type Service = AccountService<
        MemoryDirectory,
        MemoryLimiter,
        MemoryLogins,
        MemorySessions,
        MemoryWriter,
        MemoryMailer,
        FixedClock,
    >;

    fn service(logins: &[LoginRecord]) -> Service {
        let store = MemoryLogins::default();
        for l in logins {
            store.insert(l.clone());
        }
        AccountService {
            directory: MemoryDirectory::new(demo()),
            limiter: MemoryLimiter::default(),
            logins: store,
            sessions: MemorySessions::default(),
            writer: MemoryWriter::default(),
            mailer: MemoryMailer::default(),
            clock: FixedClock(NOW),
            policy: RegistrationPolicy::default(),
        }
    }

    fn session(s: &Service, hash: &str) -> Option<SessionRecord> {
        run(crate::identity::SessionStore::get(&s.sessions, hash)).unwrap()
    }

    fn open(s: &Service, hash: &str) {
        let record = SessionRecord {
            token_hash: hash.into(),
            login_id: LoginId::parse("L-1").unwrap(),
            generation: 0,
            created_at: NOW,
            last_seen_at: NOW,
            expires_at: 0,
        };
        run(crate::identity::SessionStore::create(&s.sessions, &record)).unwrap();
    }

    #[test]
    fn the_account_shows_the_login() {
        let s = service(&[login(&["1000002"], "j@example.org")]);
        let me = run(s.me(&caller(&["1000002"]))).unwrap();
        assert_eq!(
            (me.login_id.as_str(), me.username.as_str(), me.email.as_str()),
            ("L-1", "jmueller", "j@example.org")
        );
        assert_eq!(
            (me.status, me.customer_numbers.clone(), me.must_change_password),
            (LoginStatus::Active, vec![customer("1000002")], false)
        );
        assert_eq!(me.created_at, login(&[], "").created_at);
        let s = service(&[]);
        assert!(matches!(run(s.me(&caller(&["1000002"]))), Err(AccountError::NotFound)));
    }

    #[test]
    fn deleting_marks_the_login_frees_its_customer_numbers_and_ends_its_sessions() {
        let s = service(&[login(&["1000002", "1000003"], "j@example.org")]);
        open(&s, "h-1");
        run(s.delete(&caller(&["1000002", "1000003"]))).unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!((r.kind, r.customer.clone()), (RequestKind::AccountDeletion, Some(customer("1000002"))));
        assert_eq!(r.record, json!({"loginId": "L-1", "username": "jmueller"}));
        let owners: Vec<String> = r.activities.iter().map(|a| a.owner.key()).collect();
        assert_eq!(owners, ["BP#1000002", "BP#1000003"]);
        assert_eq!(r.activities[0].subject, "Benutzerkonto im Kundenportal gelöscht (jmueller)");
        let id = LoginId::parse("L-1").unwrap();
        assert_eq!(
            r.mirror_updates,
            [
                MirrorUpdate::SetLoginStatus { login_id: id.clone(), status: LoginStatus::Deleted },
                MirrorUpdate::ReleaseClaim { key: "PARTNER#1000002".into(), login_id: id.clone() },
                MirrorUpdate::ReleaseClaim { key: "PARTNER#1000003".into(), login_id: id },
            ]
        );
        assert!(session(&s, "h-1").is_none());
        let s = service(&[login(&[], "j@example.org")]);
        assert!(matches!(run(s.delete(&caller(&[]))), Err(AccountError::NotFound)));
    }

    #[test]
    fn write_refusals_keep_their_meaning() {
        let cases: Vec<(WriteError, &str)> = vec![
            (WriteError::ClaimTaken("PARTNER#1".into()), "AlreadyRegistered"),
            (WriteError::Store(StoreError("down".into())), "Store(StoreError(\"down\"))"),
            (WriteError::Conflict, "Conflict"),
            (WriteError::IdempotencyKeyTaken, "Conflict"),
            (WriteError::TokenNotUsable, "Conflict"),
        ];
        for (e, expected) in cases {
            assert_eq!(format!("{:?}", write_error(e)), expected);
        }
        let s = service(&[login(&["1000002"], "j@example.org")]);
        open(&s, "h-1");
        s.writer.refuse_next_commit(WriteError::Conflict);
        assert!(matches!(run(s.delete(&caller(&["1000002"]))), Err(AccountError::Conflict)));
        assert!(session(&s, "h-1").is_some(), "nothing ends when nothing was written");
    }

    fn weber() -> Identification {
        Identification { customer: customer("1000004"), name: "Weber".into(), source: Default::default(), bill: None }
    }

    #[test]
    fn a_further_customer_number_is_verified_and_claimed() {
        let s = service(&[login(&["1000002"], "j@example.org")]);
        open(&s, "h-1");
        let view = run(s.add_customer_number(&caller(&["1000002"]), &weber())).unwrap();
        assert_eq!(view.customer_numbers, [customer("1000002"), customer("1000004")]);
        let r = &s.writer.committed()[0];
        assert_eq!((r.kind, r.customer.clone()), (RequestKind::CustomerNumberAdded, Some(customer("1000004"))));
        assert_eq!(r.activities[0].owner.key(), "BP#1000004");
        assert_eq!(r.activities[0].subject, "Kundennummer zum Portalzugang jmueller hinzugefügt");
        let id = LoginId::parse("L-1").unwrap();
        assert_eq!(
            r.mirror_updates,
            [
                MirrorUpdate::Claim { key: "PARTNER#1000004".into(), login_id: id.clone() },
                MirrorUpdate::AddLoginPartner { login_id: id, customer: customer("1000004") },
            ]
        );
        assert_eq!(s.limiter.total(), 0, "a successful identification gives its slot back");
    }

    #[test]
    fn the_crms_address_of_an_added_customer_number_is_told() {
        let s = service(&[login(&["1000002"], "j@example.org")]);
        run(s.add_customer_number(&caller(&["1000002"]), &weber())).unwrap();
        assert_eq!(
            s.mailer.sent(),
            [("k.weber@example.org".to_owned(), "Ihre Kundennummer wurde einem Portalzugang hinzugefügt".to_owned())]
        );
        let text = &s.mailer.texts()[0];
        assert!(text.contains("Kundennummer 1000004 einem Zugang zum Kundenportal hinzugefügt"), "{text}");
        assert!(text.contains("(Benutzername jmueller)"), "{text}");
    }

    #[test]
    fn with_meter_or_account_a_further_number_needs_one_of_its_bill() {
        let mut s = service(&[login(&["1000002"], "j@example.org")]);
        s.policy.proof = RegistrationProof::MeterOrAccount;
        let me = caller(&["1000002"]);
        let r = run(s.add_customer_number(&me, &weber()));
        assert!(matches!(r, Err(AccountError::BillNumberRequired)), "{:?}", r.err());
        assert_eq!(s.limiter.total(), 0, "refused before any attempt");
        let meter = |m: &str| Some(BillNumber::Meter(crate::ids::MeterNumber::parse(m).unwrap()));
        let account = |a: &str| Some(BillNumber::Account(crate::ids::AccountNumber::parse(a).unwrap()));
        // Erika's meter and account are not Weber's: a failed identification (its slots kept).
        for bill in [meter("1EMH0012345678"), account("800000001")] {
            let r = run(s.add_customer_number(&me, &weber().with_bill(bill)));
            assert!(matches!(r, Err(AccountError::NotIdentified)), "{:?}", r.err());
        }
        assert!(s.limiter.total() > 0);
        assert!(s.writer.committed().is_empty());
        run(s.add_customer_number(&me, &weber().with_bill(account("800000005")))).unwrap();
        assert_eq!(s.writer.committed().len(), 1);
    }

    #[test]
    fn with_crm_email_a_number_is_added_only_to_a_login_with_the_crms_address() {
        let mut s = service(&[login(&["1000002"], "j@example.org")]);
        s.policy.proof = RegistrationProof::CrmEmail;
        let r = run(s.add_customer_number(&caller(&["1000002"]), &weber()));
        assert!(matches!(r, Err(AccountError::EmailNotOnFile)), "{:?}", r.err());
        assert!(s.writer.committed().is_empty());
        let mut s = service(&[login(&["1000002"], "K.Weber@Example.org")]);
        s.policy.proof = RegistrationProof::CrmEmail;
        run(s.add_customer_number(&caller(&["1000002"]), &weber())).unwrap();
        assert!(s.mailer.sent().is_empty(), "the CRM's address is the login's own");
    }

    #[test]
    fn a_customer_number_of_another_active_login_is_refused() {
        let other = |status| LoginRecord {
            login_id: LoginId::parse("L-2").unwrap(),
            username: "kweber".into(),
            status,
            ..login(&["1000004"], "k@example.org")
        };
        let s = service(&[login(&["1000002"], "j@example.org"), other(LoginStatus::Active)]);
        assert!(matches!(
            run(s.add_customer_number(&caller(&["1000002"]), &weber())),
            Err(AccountError::AlreadyRegistered)
        ));
        assert!(s.writer.committed().is_empty());
        let s = service(&[login(&["1000002"], "j@example.org"), other(LoginStatus::Deleted)]);
        run(s.add_customer_number(&caller(&["1000002"]), &weber())).unwrap();
        // One the login has already: nothing to write.
        let s = service(&[login(&["1000002", "1000004"], "j@example.org")]);
        let view = run(s.add_customer_number(&caller(&["1000002"]), &weber())).unwrap();
        assert_eq!(view.customer_numbers.len(), 2);
        assert!(s.writer.committed().is_empty());
        let wrong = Identification { name: "Webber".into(), ..weber() };
        assert!(matches!(run(s.add_customer_number(&caller(&["1000002"]), &wrong)), Err(AccountError::NotIdentified)));
        s.writer.refuse_next_commit(WriteError::ClaimTaken("PARTNER#1000005".into()));
        let petra = Identification {
            customer: customer("1000005"),
            name: "Schulz".into(),
            source: Default::default(),
            bill: None,
        };
        assert!(matches!(
            run(s.add_customer_number(&caller(&["1000002"]), &petra)),
            Err(AccountError::AlreadyRegistered)
        ));
        let ids: Vec<String> = [
            IdentificationError::NotIdentified,
            IdentificationError::TooManyAttempts { retry_after: time::Duration::seconds(7) },
            IdentificationError::Store(StoreError("down".into())),
        ]
        .into_iter()
        .map(|e| format!("{:?}", AccountError::from(e)))
        .collect();
        assert_eq!(
            ids,
            [
                "NotIdentified",
                "TooManyAttempts { retry_after: Duration { seconds: 7, nanoseconds: 0 } }",
                "Store(StoreError(\"down\"))"
            ]
        );
    }
}
