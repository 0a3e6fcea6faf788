//! Capability 12: the account — the login and its customer numbers, adding a further
//! customer number, and deletion (status GELÖSCHT; the record stays, every session ends).

use super::sessions::Caller;
use super::{LoginRecord, LoginStore, SessionStore, partner_claim};
use crate::clock::Clock;
use crate::entities::{LoginStatus, timestamp};
use crate::identification::{Identification, IdentificationError, decide, take_attempt};
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
    #[error("too many attempts for this customer number")]
    TooManyAttempts,
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
            IdentificationError::TooManyAttempts => Self::TooManyAttempts,
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

pub struct AccountService<D, L, G, S, W, C> {
    pub directory: D,
    pub limiter: L,
    pub logins: G,
    pub sessions: S,
    pub writer: W,
    pub clock: C,
    pub attempts_per_hour: u32,
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

impl<D, L, G, S, W, C> AccountService<D, L, G, S, W, C>
where
    D: CustomerDirectory,
    L: AttemptLimiter,
    G: LoginStore,
    S: SessionStore,
    W: RequestWriter,
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
        self.sessions.delete_all(&login.login_id).await?;
        Ok(())
    }

    /// Adds a further customer number, verified like a registration.
    pub async fn add_customer_number(
        &self,
        caller: &Caller,
        who: &Identification,
    ) -> Result<AccountView, AccountError> {
        let claim = partner_claim(&who.customer);
        let (allowed, partner, holder, login) = futures::join!(
            take_attempt(&self.limiter, &self.clock, &who.customer, self.attempts_per_hour),
            self.directory.partner(&who.customer),
            self.logins.by_claim(&claim),
            self.login(caller),
        );
        let partner = decide(who, allowed, partner)?;
        let mut login = login?;
        if login.partner_numbers.contains(&partner.partner_number) {
            return Ok(login.into());
        }
        if holder?.is_some_and(|h| h.status != LoginStatus::Deleted && h.login_id != login.login_id) {
            return Err(AccountError::AlreadyRegistered);
        }
        let mut r = request(RequestKind::CustomerNumberAdded, &partner.partner_number, &login, self.clock.now());
        r.activities = vec![Activity {
            owner: ActivityOwner::Customer(partner.partner_number.clone()),
            activity_type: "PORTAL_CUSTOMER_NUMBER_ADDED",
            subject: format!("Kundennummer zum Portalzugang {} hinzugefügt", login.username),
        }];
        r.mirror_updates = vec![
            MirrorUpdate::Claim { key: partner_claim(&partner.partner_number), login_id: login.login_id.clone() },
            MirrorUpdate::AddLoginPartner {
                login_id: login.login_id.clone(),
                customer: partner.partner_number.clone(),
            },
        ];
        self.writer.commit(r).await.map_err(write_error)?;
        login.partner_numbers.push(partner.partner_number);
        // Open sessions see the new customer number at once.
        self.sessions.set_partners(&login.login_id, &login.partner_numbers).await?;
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
