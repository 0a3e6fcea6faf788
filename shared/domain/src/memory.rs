//! In-memory adapters of the ports, for fast handler and rule tests.

use crate::entities::{
    BankDetails, BusinessPartner, Contract, ContractAccountRecord, InstallmentPlan, MeterReading, MeterRecord,
};
use crate::export::{MirrorSnapshot, Owned};
use crate::identity::sessions::Caller;
use crate::ids::{AccountNumber, ContractNumber};
use crate::ids::{CustomerNumber, MeterNumber};
use crate::ports::{AttemptLimiter, CustomerDirectory, RequestWriter, StoreError};
use crate::requests::{CommitReceipt, CustomerRequest, IdempotencyScope, StoredAnswer, WriteError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The mirror, from a snapshot.
#[derive(Debug, Clone)]
pub struct MemoryDirectory(Arc<MirrorSnapshot>);

impl MemoryDirectory {
    pub fn new(snapshot: MirrorSnapshot) -> Self {
        Self(Arc::new(snapshot))
    }
}

impl CustomerDirectory for MemoryDirectory {
    async fn partner(&self, customer: &CustomerNumber) -> Result<Option<BusinessPartner>, StoreError> {
        Ok(self.0.partners.iter().find(|p| &p.partner_number == customer).cloned())
    }

    async fn contracts(&self, customer: &CustomerNumber) -> Result<Vec<Owned<Contract>>, StoreError> {
        Ok(self.0.contracts.iter().filter(|c| &c.partner_number == customer).cloned().collect())
    }

    async fn contract_accounts(
        &self,
        customer: &CustomerNumber,
    ) -> Result<Vec<crate::entities::ContractAccountRecord>, StoreError> {
        Ok(self.0.accounts.iter().filter(|a| &a.partner_number == customer).cloned().collect())
    }

    async fn meters(&self, customer: &CustomerNumber) -> Result<Vec<MeterRecord>, StoreError> {
        Ok(self.0.meters.iter().filter(|m| &m.partner_number == customer).cloned().collect())
    }

    async fn meter(&self, customer: &CustomerNumber, meter: &MeterNumber) -> Result<Option<MeterRecord>, StoreError> {
        Ok(self.0.meters.iter().find(|m| &m.partner_number == customer && &m.meter.meter_number == meter).cloned())
    }
}

/// Attempt counters in a map, with the expiry each window was given.
#[derive(Debug, Clone, Default)]
pub struct MemoryLimiter(Arc<Mutex<HashMap<String, u32>>>, Arc<Mutex<HashMap<String, i64>>>);

impl MemoryLimiter {
    pub fn total(&self) -> u32 {
        lock(&self.0).values().sum()
    }

    /// The windows taken, each with its attempts and its expiry (epoch seconds), by key.
    pub fn windows(&self) -> std::collections::BTreeMap<String, (u32, i64)> {
        let expiries = lock(&self.1);
        lock(&self.0).iter().map(|(k, n)| (k.clone(), (*n, expiries.get(k).copied().unwrap_or_default()))).collect()
    }
}

impl AttemptLimiter for MemoryLimiter {
    async fn attempt(&self, window_key: &str, limit: u32, expires_at_epoch: i64) -> Result<bool, StoreError> {
        lock(&self.1).insert(window_key.to_owned(), expires_at_epoch);
        let mut map = lock(&self.0);
        let n = map.entry(window_key.to_owned()).or_insert(0);
        if *n >= limit {
            return Ok(false);
        }
        *n += 1;
        Ok(true)
    }

    async fn give_back(&self, window_key: &str) -> Result<(), StoreError> {
        if let Some(n) = lock(&self.0).get_mut(window_key) {
            *n = n.saturating_sub(1);
        }
        Ok(())
    }
}

/// A write path that keeps committed requests in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryWriter {
    committed: Arc<Mutex<Vec<CustomerRequest>>>,
    answers: Arc<Mutex<HashMap<String, StoredAnswer>>>,
    refusal: Arc<Mutex<Option<WriteError>>>,
    race: Arc<Mutex<Option<Option<StoredAnswer>>>>,
}

impl MemoryWriter {
    pub fn committed(&self) -> Vec<CustomerRequest> {
        lock(&self.committed).clone()
    }

    /// Makes the next commit fail with `error` (to test how the rules handle it).
    pub fn refuse_next_commit(&self, error: WriteError) {
        *lock(&self.refusal) = Some(error);
    }

    /// Makes the next commit lose an idempotency race: another request under the same key
    /// claimed it just before, and has committed `winner` (or is still writing: `None`).
    pub fn lose_next_race(&self, winner: Option<StoredAnswer>) {
        *lock(&self.race) = Some(winner);
    }
}

impl RequestWriter for MemoryWriter {
    async fn find_answer(&self, scope: &IdempotencyScope) -> Result<Option<StoredAnswer>, StoreError> {
        Ok(lock(&self.answers).get(scope.as_str()).cloned())
    }

    async fn commit(&self, request: CustomerRequest) -> Result<CommitReceipt, WriteError> {
        if let Some(error) = lock(&self.refusal).take() {
            return Err(error);
        }
        if let Some(winner) = lock(&self.race).take() {
            if let (Some(claim), Some(answer)) = (&request.idempotency, winner) {
                lock(&self.answers).insert(claim.scope.as_str().to_owned(), answer);
            }
            return Err(WriteError::IdempotencyKeyTaken);
        }
        if let (Some(claim), Some(answer)) = (&request.idempotency, request.stored_answer()) {
            let mut answers = lock(&self.answers);
            if answers.contains_key(claim.scope.as_str()) {
                return Err(WriteError::IdempotencyKeyTaken);
            }
            answers.insert(claim.scope.as_str().to_owned(), answer);
        }
        lock(&self.committed).push(request);
        Ok(CommitReceipt { message_sent: true })
    }
}

/// Sessions in a map.
#[derive(Debug, Clone, Default)]
pub struct MemorySessions(Arc<Mutex<HashMap<String, crate::identity::SessionRecord>>>);

impl crate::identity::SessionStore for MemorySessions {
    async fn create(&self, session: &crate::identity::SessionRecord) -> Result<(), StoreError> {
        lock(&self.0).insert(session.token_hash.clone(), session.clone());
        Ok(())
    }

    async fn get(&self, token_hash: &str) -> Result<Option<crate::identity::SessionRecord>, StoreError> {
        Ok(lock(&self.0).get(token_hash).cloned())
    }

    async fn touch(&self, token_hash: &str, at: time::OffsetDateTime) -> Result<(), StoreError> {
        if let Some(s) = lock(&self.0).get_mut(token_hash) {
            s.last_seen_at = at;
        }
        Ok(())
    }

    async fn delete(&self, token_hash: &str) -> Result<(), StoreError> {
        lock(&self.0).remove(token_hash);
        Ok(())
    }

    async fn delete_all(&self, login_id: &crate::ids::LoginId) -> Result<usize, StoreError> {
        let mut map = lock(&self.0);
        let before = map.len();
        map.retain(|_, s| &s.login_id != login_id);
        Ok(before - map.len())
    }
}

impl crate::reads::ScopedReads for MemoryDirectory {
    async fn partner(&self, caller: &Caller, customer: &CustomerNumber) -> Result<Option<BusinessPartner>, StoreError> {
        Ok(self.0.partners.iter().find(|p| &p.partner_number == customer && caller.owns(customer)).cloned())
    }

    async fn account(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> Result<Option<ContractAccountRecord>, StoreError> {
        Ok(self.0.accounts.iter().find(|a| &a.account_number == account && caller.owns(&a.partner_number)).cloned())
    }

    async fn account_contracts(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> Result<Option<(ContractAccountRecord, Vec<Contract>)>, StoreError> {
        let Some(record) = crate::reads::ScopedReads::account(self, caller, account).await? else { return Ok(None) };
        let contracts =
            self.0.contracts.iter().filter(|c| &c.entity.account_number == account).map(|c| c.entity.clone()).collect();
        Ok(Some((record, contracts)))
    }

    async fn contract(&self, caller: &Caller, contract: &ContractNumber) -> Result<Option<Contract>, StoreError> {
        Ok(self
            .0
            .contracts
            .iter()
            .find(|c| &c.entity.contract_number == contract && caller.owns(&c.partner_number))
            .map(|c| c.entity.clone()))
    }

    async fn bank_details(&self, caller: &Caller, account: &AccountNumber) -> Result<Option<BankDetails>, StoreError> {
        Ok(self.0.bank_details.iter().find(|b| &b.account_number == account && caller.owns(&b.partner_number)).cloned())
    }

    async fn installment_plan(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> Result<Option<Owned<InstallmentPlan>>, StoreError> {
        Ok(self
            .0
            .installment_plans
            .iter()
            .find(|p| &p.entity.account_number == account && caller.owns(&p.partner_number))
            .cloned())
    }

    async fn documents(&self, caller: &Caller) -> Result<Vec<crate::entities::Document>, StoreError> {
        Ok(self.0.documents.iter().filter(|d| caller.owns(&d.partner_number)).cloned().collect())
    }

    async fn document_file(
        &self,
        caller: &Caller,
        document: &crate::ids::DocumentId,
    ) -> Result<Option<(crate::entities::Document, Vec<u8>)>, StoreError> {
        use base64::Engine;
        let Some(d) = self.0.documents.iter().find(|d| &d.document_id == document && caller.owns(&d.partner_number))
        else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.content_base64.as_deref().unwrap_or_default())
            .unwrap_or_default();
        Ok(Some((d.clone(), bytes)))
    }

    async fn meters(&self, caller: &Caller) -> Result<Vec<MeterRecord>, StoreError> {
        Ok(self.0.meters.iter().filter(|m| caller.owns(&m.partner_number)).cloned().collect())
    }

    async fn meter_readings(
        &self,
        caller: &Caller,
        meter: &MeterNumber,
    ) -> Result<Option<(MeterRecord, Vec<MeterReading>)>, StoreError> {
        let Some(record) =
            self.0.meters.iter().find(|m| &m.meter.meter_number == meter && caller.owns(&m.partner_number))
        else {
            return Ok(None);
        };
        let readings = self.0.readings.iter().filter(|r| &r.meter_number == meter).cloned().collect();
        Ok(Some((record.clone(), readings)))
    }
}

/// Logins in a map.
#[derive(Debug, Clone, Default)]
pub struct MemoryLogins(Arc<Mutex<HashMap<crate::ids::LoginId, crate::identity::LoginRecord>>>);

impl MemoryLogins {
    pub fn insert(&self, login: crate::identity::LoginRecord) {
        lock(&self.0).insert(login.login_id.clone(), login);
    }
}

impl crate::identity::LoginStore for MemoryLogins {
    async fn by_claim(&self, claim: &str) -> Result<Option<crate::identity::LoginRecord>, StoreError> {
        let logins = lock(&self.0);
        if let Some(customer) = claim.strip_prefix("PARTNER#") {
            return Ok(logins.values().find(|l| l.partner_numbers.iter().any(|p| p.as_str() == customer)).cloned());
        }
        let name = claim.strip_prefix("USERNAME#").unwrap_or_default();
        Ok(logins.values().find(|l| l.username == name).cloned())
    }

    async fn get(&self, login_id: &crate::ids::LoginId) -> Result<Option<crate::identity::LoginRecord>, StoreError> {
        Ok(lock(&self.0).get(login_id).cloned())
    }

    async fn by_email(&self, email: &str) -> Result<Vec<crate::identity::LoginRecord>, StoreError> {
        Ok(lock(&self.0).values().filter(|l| l.email == email).cloned().collect())
    }

    async fn set_password(&self, login_id: &crate::ids::LoginId, hash: &str) -> Result<u32, StoreError> {
        let mut logins = lock(&self.0);
        let login = logins.get_mut(login_id).ok_or_else(|| StoreError("no such login".into()))?;
        login.password_hash = hash.to_owned();
        login.must_change_password = false;
        login.password_expires_at = None;
        login.session_generation += 1;
        Ok(login.session_generation)
    }
}

/// Failures and locks per subject in a map.
#[derive(Debug, Clone, Default)]
pub struct MemoryThrottle(Arc<Mutex<HashMap<String, (u32, time::OffsetDateTime)>>>);

impl crate::identity::LoginThrottle for MemoryThrottle {
    async fn begin(
        &self,
        subject: &str,
        now: time::OffsetDateTime,
    ) -> Result<Result<u32, crate::identity::Throttled>, StoreError> {
        Ok(match lock(&self.0).get(subject) {
            Some((_, until)) if *until > now => Err(crate::identity::Throttled { until: *until }),
            Some((failures, _)) => Ok(*failures),
            None => Ok(0),
        })
    }

    async fn fail(&self, subject: &str, failures: u32, locked_until: time::OffsetDateTime) -> Result<(), StoreError> {
        lock(&self.0).insert(subject.to_owned(), (failures, locked_until));
        Ok(())
    }

    async fn clear(&self, subject: &str) -> Result<(), StoreError> {
        lock(&self.0).remove(subject);
        Ok(())
    }
}

/// Mails kept in a list: recipient and subject (texts stay secret unless a test asks).
#[derive(Debug, Clone, Default)]
pub struct MemoryMailer(Arc<Mutex<Vec<(String, String)>>>, Arc<Mutex<Vec<secrecy::SecretString>>>);

impl MemoryMailer {
    pub fn sent(&self) -> Vec<(String, String)> {
        lock(&self.0).clone()
    }

    /// The texts of the mails sent, in order (they may hold passwords and codes).
    pub fn texts(&self) -> Vec<String> {
        use secrecy::ExposeSecret;
        lock(&self.1).iter().map(|t| t.expose_secret().to_owned()).collect()
    }
}

impl crate::identity::Mailer for MemoryMailer {
    async fn send(&self, mail: crate::identity::Mail) -> Result<(), StoreError> {
        lock(&self.0).push((mail.to, mail.subject));
        lock(&self.1).push(mail.text);
        Ok(())
    }
}

/// Reset requests in a list, in order.
#[derive(Debug, Clone, Default)]
pub struct MemoryResetQueue(Arc<Mutex<Vec<String>>>);

impl MemoryResetQueue {
    pub fn queued(&self) -> Vec<String> {
        lock(&self.0).clone()
    }
}

impl crate::identity::ResetQueue for MemoryResetQueue {
    async fn enqueue(&self, username_or_email: &str) -> Result<(), StoreError> {
        lock(&self.0).push(username_or_email.to_owned());
        Ok(())
    }
}

impl crate::reads::Catalog for MemoryDirectory {
    async fn products(&self) -> Result<Vec<crate::entities::Product>, StoreError> {
        Ok(self.0.products.clone())
    }

    async fn code_list(&self, name: &str) -> Result<Vec<crate::entities::CodeValue>, StoreError> {
        Ok(self.0.code_values.iter().filter(|c| c.list_name == name).cloned().collect())
    }
}

/// Single-use tokens in a map.
#[derive(Debug, Clone, Default)]
pub struct MemoryTokens(Arc<Mutex<HashMap<String, crate::identity::OneTimeToken>>>);

impl crate::identity::TokenStore for MemoryTokens {
    async fn put(&self, token: &crate::identity::OneTimeToken) -> Result<(), StoreError> {
        lock(&self.0).insert(token.token_hash.clone(), token.clone());
        Ok(())
    }

    async fn get(&self, token_hash: &str) -> Result<Option<crate::identity::OneTimeToken>, StoreError> {
        Ok(lock(&self.0).get(token_hash).cloned())
    }

    async fn consume(
        &self,
        token_hash: &str,
        purpose: crate::identity::TokenPurpose,
        now_epoch: i64,
    ) -> Result<bool, StoreError> {
        match lock(&self.0).get_mut(token_hash) {
            Some(t) if t.purpose == purpose && t.used_at.is_none() && t.expires_at > now_epoch => {
                t.used_at = Some(now_epoch);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Uploaded files in a map, by key.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles(Arc<Mutex<HashMap<String, Vec<u8>>>>);

impl MemoryFiles {
    pub fn keys(&self) -> Vec<String> {
        lock(&self.0).keys().cloned().collect()
    }
}

impl crate::uploads::FileStore for MemoryFiles {
    async fn put(&self, key: &str, bytes: Vec<u8>, _media_type: &str) -> Result<(), StoreError> {
        lock(&self.0).insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.0).remove(key);
        Ok(())
    }
}
