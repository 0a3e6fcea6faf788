//! Identifying a customer by customer number and name (anonymous meter reading,
//! registration, adding a customer number to a login): one matching rule, one answer for
//! an unknown number and a wrong name, and attempt limits per customer number, per source
//! address and for the whole deployment ([`crate::budgets`]).

use crate::budgets::{self, Exhausted, FailureBudgets, Slots, SourceAddress, Subject};
use crate::clock::Clock;
use crate::entities::BusinessPartner;
use crate::ids::{AccountNumber, CustomerNumber, MeterNumber};
use crate::names::names_match;
use crate::ports::{AttemptLimiter, CustomerDirectory, StoreError};
use time::Duration;

/// Customer number and name as typed by the customer, where the request came from, and a
/// further number from the bill where the deployment asks for one.
#[derive(Debug, Clone)]
pub struct Identification {
    pub customer: CustomerNumber,
    pub name: String,
    pub source: SourceAddress,
    pub bill: Option<BillNumber>,
}

impl Identification {
    pub fn new(customer: CustomerNumber, name: impl Into<String>, source: SourceAddress) -> Self {
        Self { customer, name: name.into(), source, bill: None }
    }

    pub fn with_bill(self, bill: Option<BillNumber>) -> Self {
        Self { bill, ..self }
    }
}

/// A number printed on every bill besides the customer number: a meter's or the contract
/// account's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillNumber {
    Meter(MeterNumber),
    Account(AccountNumber),
}

/// What proves a customer at registration and when a customer number is added to a login
/// (template parameter `RegistrationProof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationProof {
    /// Customer number and name (the module description's rule).
    #[default]
    Name,
    /// Also a meter number or contract account number of the customer.
    MeterOrAccount,
    /// The typed e-mail address must be the one the CRM has for the customer; otherwise the
    /// login waits (AUSSTEHEND) for the CRM to approve it, and a customer number is added only
    /// to a login with that address.
    CrmEmail,
}

impl RegistrationProof {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "NAME" => Some(Self::Name),
            "METER_OR_ACCOUNT" => Some(Self::MeterOrAccount),
            "CRM_EMAIL" => Some(Self::CrmEmail),
            _ => None,
        }
    }

    /// Whether the identification must name a meter or contract account.
    pub fn needs_bill(self) -> bool {
        self == Self::MeterOrAccount
    }
}

/// Whether the bill number belongs to the customer (false without a number, or when the
/// deployment does not ask for one: the answer is then not used). One call, in the
/// identification's round.
pub async fn bill_shows(
    directory: &impl CustomerDirectory,
    proof: RegistrationProof,
    who: &Identification,
) -> Result<bool, StoreError> {
    if !proof.needs_bill() {
        return Ok(true);
    }
    match &who.bill {
        None => Ok(false),
        Some(BillNumber::Meter(meter)) => Ok(directory.meter(&who.customer, meter).await?.is_some()),
        Some(BillNumber::Account(account)) => {
            Ok(directory.contract_accounts(&who.customer).await?.iter().any(|a| &a.account_number == account))
        }
    }
}

/// Two e-mail addresses are the same address whatever their case.
pub fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

#[derive(Debug, thiserror::Error)]
pub enum IdentificationError {
    /// Unknown customer number or a name that does not match: one answer for both.
    #[error("customer number and name do not match")]
    NotIdentified,
    /// A budget is used up: the customer number's, the source address's or the deployment's.
    #[error("too many attempts")]
    TooManyAttempts { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The limits of identification attempts per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentificationLimits {
    /// Failed attempts per customer number (`AnonymousAttemptsPerHour`).
    pub per_customer_per_hour: u32,
    pub budgets: FailureBudgets,
}

impl Default for IdentificationLimits {
    fn default() -> Self {
        Self { per_customer_per_hour: 10, budgets: FailureBudgets::default() }
    }
}

/// Takes one identification attempt: a slot of the customer number's hour, of the source
/// address's and of the deployment's, atomically and in one round (parallel guesses cannot
/// pass a limit together). A successful identification gives them back ([`succeeded`]), so
/// that only failed identifications count.
pub async fn take_attempt(
    limiter: &impl AttemptLimiter,
    clock: &impl Clock,
    who: &Identification,
    limits: &IdentificationLimits,
) -> Result<Result<Slots, Exhausted>, StoreError> {
    let own = Subject { key: format!("identification#{}", who.customer), per_hour: limits.per_customer_per_hour };
    budgets::take(limiter, clock, &limits.budgets, &who.source, Some(&own)).await
}

/// Gives the slots of a successful identification back: a customer's own readings and
/// registrations never use up a budget.
pub async fn succeeded(limiter: &impl AttemptLimiter, slots: Slots) {
    budgets::give_back(limiter, slots).await
}

/// Decides the identification from what one round of calls returned: the partner and the
/// attempt's slots (to give back once the request has succeeded).
pub fn decide(
    who: &Identification,
    allowed: Result<Result<Slots, Exhausted>, StoreError>,
    partner: Result<Option<BusinessPartner>, StoreError>,
) -> Result<(BusinessPartner, Slots), IdentificationError> {
    decide_with_bill(who, allowed, partner, Ok(true))
}

/// [`decide`], where the bill number must also belong to the customer ([`bill_shows`]): a
/// wrong or missing number is the same failed identification as a wrong name.
pub fn decide_with_bill(
    who: &Identification,
    allowed: Result<Result<Slots, Exhausted>, StoreError>,
    partner: Result<Option<BusinessPartner>, StoreError>,
    bill: Result<bool, StoreError>,
) -> Result<(BusinessPartner, Slots), IdentificationError> {
    let slots = allowed?.map_err(|e| IdentificationError::TooManyAttempts { retry_after: e.retry_after })?;
    match (partner?, bill?) {
        (Some(p), true) if names_match(&who.name, p.identifying_name()) => Ok((p, slots)),
        _ => Err(IdentificationError::NotIdentified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::memory::MemoryLimiter;
    use crate::testkit::{NOW, customer, demo, run};

    fn who(number: &str, name: &str, from: &str) -> Identification {
        Identification::new(customer(number), name, SourceAddress::of(from))
    }

    fn limits(per_customer: u32, per_address: u32) -> IdentificationLimits {
        IdentificationLimits {
            per_customer_per_hour: per_customer,
            budgets: FailureBudgets { per_address_per_hour: per_address, global_per_hour: 1_000 },
        }
    }

    #[test]
    fn a_successful_identification_gives_its_slots_back() {
        let limiter = MemoryLimiter::default();
        let clock = FixedClock(NOW);
        let erika = who("1000001", "Mustermann", "203.0.113.7");
        for _ in 0..5 {
            let slots = run(take_attempt(&limiter, &clock, &erika, &limits(2, 2))).unwrap().unwrap();
            run(succeeded(&limiter, slots));
        }
        assert_eq!(limiter.total(), 0);
        let _first = run(take_attempt(&limiter, &clock, &erika, &limits(2, 10))).unwrap().unwrap();
        let _second = run(take_attempt(&limiter, &clock, &erika, &limits(2, 10))).unwrap().unwrap();
        assert!(run(take_attempt(&limiter, &clock, &erika, &limits(2, 10))).unwrap().is_err(), "failures count");
    }

    #[test]
    fn an_attempt_takes_a_slot_of_the_customer_numbers_hour() {
        let limiter = MemoryLimiter::default();
        let clock = FixedClock(NOW);
        let one = who("1000001", "x", "203.0.113.7");
        let _a = run(take_attempt(&limiter, &clock, &one, &limits(2, 10))).unwrap().unwrap();
        let _b = run(take_attempt(&limiter, &clock, &one, &limits(2, 10))).unwrap().unwrap();
        assert!(run(take_attempt(&limiter, &clock, &one, &limits(2, 10))).unwrap().is_err());
        let _c =
            run(take_attempt(&limiter, &clock, &who("1000002", "x", "203.0.113.7"), &limits(2, 10))).unwrap().unwrap();
        let hour = NOW.unix_timestamp() / 3600;
        let windows = limiter.windows();
        assert_eq!(windows[&format!("identification#1000001#{hour}")], (2, (hour + 2) * 3600));
        assert_eq!(windows[&format!("failures#address#203.0.113.7#{hour}")].0, 3);
        // The next hour is a new window.
        let later = FixedClock(NOW + Duration::hours(1));
        assert!(run(take_attempt(&limiter, &later, &one, &limits(2, 10))).unwrap().is_ok());
    }

    #[test]
    fn guesses_across_customer_numbers_from_one_address_are_bounded() {
        let limiter = MemoryLimiter::default();
        let clock = FixedClock(NOW);
        for n in 0..5 {
            let guess = who(&format!("200000{n}"), "x", "2001:db8:7:7::1");
            assert!(run(take_attempt(&limiter, &clock, &guess, &limits(10, 5))).unwrap().is_ok());
        }
        // Another address in the same /64 shares the budget.
        let guess = who("2000009", "x", "2001:db8:7:7:ffff::2");
        assert!(run(take_attempt(&limiter, &clock, &guess, &limits(10, 5))).unwrap().is_err());
    }

    #[test]
    fn the_limit_comes_before_the_name_and_unknown_is_wrong() {
        let erika = demo().partners[0].clone();
        let w = |name: &str| who("1000001", name, "203.0.113.7");
        let ok = || Ok(Ok(Slots::default()));
        assert_eq!(
            decide(&w("mustermann"), ok(), Ok(Some(erika.clone()))).unwrap().0.partner_number,
            customer("1000001")
        );
        assert!(matches!(decide(&w("Muster"), ok(), Ok(Some(erika.clone()))), Err(IdentificationError::NotIdentified)));
        assert!(matches!(decide(&w("Mustermann"), ok(), Ok(None)), Err(IdentificationError::NotIdentified)));
        let exhausted = Ok(Err(Exhausted { retry_after: Duration::minutes(5) }));
        assert!(matches!(
            decide(&w("Mustermann"), exhausted, Ok(Some(erika.clone()))),
            Err(IdentificationError::TooManyAttempts { retry_after }) if retry_after == Duration::minutes(5)
        ));
        assert!(matches!(
            decide(&w("Mustermann"), Err(StoreError("down".into())), Ok(Some(erika))),
            Err(IdentificationError::Store(_))
        ));
    }
}
