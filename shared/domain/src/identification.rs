//! Identifying a customer by customer number and name (anonymous meter reading,
//! registration, adding a customer number to a login): one matching rule, one answer for
//! an unknown number and a wrong name, and one attempt limit per customer number.

use crate::clock::Clock;
use crate::entities::BusinessPartner;
use crate::ids::CustomerNumber;
use crate::names::names_match;
use crate::ports::{AttemptLimiter, StoreError};

/// Customer number and name as typed by the customer.
#[derive(Debug, Clone)]
pub struct Identification {
    pub customer: CustomerNumber,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentificationError {
    /// Unknown customer number or a name that does not match: one answer for both.
    #[error("customer number and name do not match")]
    NotIdentified,
    #[error("too many attempts for this customer number")]
    TooManyAttempts,
    #[error(transparent)]
    Store(#[from] StoreError),
}

const SCOPE: &str = "identification";

/// Takes one identification attempt of the customer number's current hour. Every attempt
/// counts, so that guessing names is limited however the guesses are spread.
pub async fn take_attempt(
    limiter: &impl AttemptLimiter,
    clock: &impl Clock,
    customer: &CustomerNumber,
    attempts_per_hour: u32,
) -> Result<bool, StoreError> {
    let hour = clock.now().unix_timestamp().div_euclid(3600);
    let key = format!("{SCOPE}#{customer}#{hour}");
    limiter.attempt(&key, attempts_per_hour, (hour + 2) * 3600).await
}

/// Decides the identification from what one round of calls returned.
pub fn decide(
    who: &Identification,
    allowed: Result<bool, StoreError>,
    partner: Result<Option<BusinessPartner>, StoreError>,
) -> Result<BusinessPartner, IdentificationError> {
    if !allowed? {
        return Err(IdentificationError::TooManyAttempts);
    }
    match partner? {
        Some(p) if names_match(&who.name, p.identifying_name()) => Ok(p),
        _ => Err(IdentificationError::NotIdentified),
    }
}
