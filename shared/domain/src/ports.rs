//! Ports: what the rules need from storage and messaging, one trait per concern, so that
//! a function gets only the capabilities it uses and tests can plug in memory adapters.

use crate::entities::{BusinessPartner, Contract, ContractAccountRecord, MeterRecord};
use crate::export::Owned;
use crate::ids::{CustomerNumber, MeterNumber};
use crate::requests::{CommitReceipt, CustomerRequest, IdempotencyScope, StoredAnswer, WriteError};
use std::future::Future;

/// A storage or messaging failure the rules cannot decide about (answered with 500).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Read access to one customer's mirrored master data.
pub trait CustomerDirectory: Send + Sync {
    fn partner(
        &self,
        customer: &CustomerNumber,
    ) -> impl Future<Output = Result<Option<BusinessPartner>, StoreError>> + Send;
    fn contracts(
        &self,
        customer: &CustomerNumber,
    ) -> impl Future<Output = Result<Vec<Owned<Contract>>, StoreError>> + Send;
    fn contract_accounts(
        &self,
        customer: &CustomerNumber,
    ) -> impl Future<Output = Result<Vec<ContractAccountRecord>, StoreError>> + Send;
    fn meters(&self, customer: &CustomerNumber) -> impl Future<Output = Result<Vec<MeterRecord>, StoreError>> + Send;
    /// The meter if, and only if, it belongs to the customer.
    fn meter(
        &self,
        customer: &CustomerNumber,
        meter: &MeterNumber,
    ) -> impl Future<Output = Result<Option<MeterRecord>, StoreError>> + Send;
}

/// Counts attempts per subject in fixed time windows.
pub trait AttemptLimiter: Send + Sync {
    /// Takes one attempt of the window if fewer than `limit` were taken (atomically, so
    /// parallel attempts cannot pass the limit together); false when the limit is reached.
    fn attempt(
        &self,
        window_key: &str,
        limit: u32,
        expires_at_epoch: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives one attempt of the window back (never below none): an attempt that turned out
    /// to be no guess.
    fn give_back(&self, window_key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The one write path every customer request takes: transaction record, activities,
/// idempotency claim and outbox entry in one transaction, then exactly one message.
pub trait RequestWriter: Send + Sync {
    fn find_answer(
        &self,
        scope: &IdempotencyScope,
    ) -> impl Future<Output = Result<Option<StoredAnswer>, StoreError>> + Send;
    fn commit(&self, request: CustomerRequest) -> impl Future<Output = Result<CommitReceipt, WriteError>> + Send;
}
