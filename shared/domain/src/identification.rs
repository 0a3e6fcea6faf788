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

/// The customer number's attempt window of the current hour: its key and expiry.
fn window(clock: &impl Clock, customer: &CustomerNumber) -> (String, i64) {
    let hour = clock.now().unix_timestamp().div_euclid(3600);
    (format!("{SCOPE}#{customer}#{hour}"), (hour + 2) * 3600)
}

/// Takes one identification attempt of the customer number's current hour. Every attempt
/// takes its slot first (atomically, so parallel guesses cannot pass the limit together);
/// a successful one gives it back ([`succeeded`]), so that only failed identifications
/// count against the customer number.
pub async fn take_attempt(
    limiter: &impl AttemptLimiter,
    clock: &impl Clock,
    customer: &CustomerNumber,
    attempts_per_hour: u32,
) -> Result<bool, StoreError> {
    let (key, expires_at) = window(clock, customer);
    limiter.attempt(&key, attempts_per_hour, expires_at).await
}

/// Gives the slot of a successful identification back: a customer's own readings and
/// registrations never use up his budget. A failure to give it back only leaves the
/// budget tighter for the hour; it is logged, not answered.
pub async fn succeeded(limiter: &impl AttemptLimiter, clock: &impl Clock, customer: &CustomerNumber) {
    let (key, _) = window(clock, customer);
    if let Err(e) = limiter.give_back(&key).await {
        tracing::warn!(error = %e, "identification slot not given back");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::memory::MemoryLimiter;
    use crate::testkit::{NOW, customer, demo, run};

    #[test]
    fn a_successful_identification_gives_its_slot_back() {
        let limiter = MemoryLimiter::default();
        let clock = FixedClock(NOW);
        for _ in 0..5 {
            assert!(run(take_attempt(&limiter, &clock, &customer("1000001"), 2)).unwrap());
            run(succeeded(&limiter, &clock, &customer("1000001")));
        }
        assert!(run(take_attempt(&limiter, &clock, &customer("1000001"), 2)).unwrap(), "a failure");
        assert!(run(take_attempt(&limiter, &clock, &customer("1000001"), 2)).unwrap(), "a second failure");
        assert!(!run(take_attempt(&limiter, &clock, &customer("1000001"), 2)).unwrap(), "failures count");
        // Never below none: giving back more than was taken does not widen the budget.
        let fresh = MemoryLimiter::default();
        run(succeeded(&fresh, &clock, &customer("1000002")));
        run(succeeded(&fresh, &clock, &customer("1000002")));
        assert!(run(take_attempt(&fresh, &clock, &customer("1000002"), 1)).unwrap());
        assert!(!run(take_attempt(&fresh, &clock, &customer("1000002"), 1)).unwrap());
    }

    #[test]
    fn an_attempt_takes_a_slot_of_the_customer_numbers_hour() {
        let limiter = MemoryLimiter::default();
        let clock = FixedClock(NOW);
        assert!(run(take_attempt(&limiter, &clock, &customer("1000001"), 2)).unwrap());
        assert!(run(take_attempt(&limiter, &clock, &customer("1000001"), 2)).unwrap());
        assert!(!run(take_attempt(&limiter, &clock, &customer("1000001"), 2)).unwrap());
        assert!(run(take_attempt(&limiter, &clock, &customer("1000002"), 2)).unwrap());
        let hour = NOW.unix_timestamp() / 3600;
        let windows = limiter.windows();
        assert_eq!(windows[&format!("identification#1000001#{hour}")], (2, (hour + 2) * 3600));
        // The next hour is a new window.
        let later = FixedClock(NOW + time::Duration::hours(1));
        assert!(run(take_attempt(&limiter, &later, &customer("1000001"), 2)).unwrap());
    }

    #[test]
    fn the_limit_comes_before_the_name_and_unknown_is_wrong() {
        let erika = demo().partners[0].clone();
        let who = |name: &str| Identification { customer: customer("1000001"), name: name.into() };
        assert_eq!(
            decide(&who("mustermann"), Ok(true), Ok(Some(erika.clone()))).unwrap().partner_number,
            customer("1000001")
        );
        assert!(matches!(
            decide(&who("Muster"), Ok(true), Ok(Some(erika.clone()))),
            Err(IdentificationError::NotIdentified)
        ));
        assert!(matches!(decide(&who("Mustermann"), Ok(true), Ok(None)), Err(IdentificationError::NotIdentified)));
        assert!(matches!(
            decide(&who("Mustermann"), Ok(false), Ok(Some(erika.clone()))),
            Err(IdentificationError::TooManyAttempts)
        ));
        assert!(matches!(
            decide(&who("Mustermann"), Err(StoreError("down".into())), Ok(Some(erika))),
            Err(IdentificationError::Store(_))
        ));
    }
}
