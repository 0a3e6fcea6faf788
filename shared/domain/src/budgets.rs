//! Failure budgets across customers. A guess at a customer number, a login or a password
//! reset counts against its own subject (the customer number's hourly attempts, the
//! username's lockout, the reset address) and also against the source address it came from
//! and against one budget for the whole deployment, each per hour. Guessing across many
//! customer numbers from one address, or from many addresses at once, is bounded that way.
//!
//! Every attempt takes its slots first, all in one concurrent round (atomic conditional
//! increments, so parallel attempts cannot pass a limit together); an attempt that turns
//! out to be no guess gives them back.

use crate::clock::Clock;
use crate::ports::{AttemptLimiter, StoreError};
use std::net::IpAddr;
use time::Duration;

/// Where a request came from, as API Gateway saw it (`requestContext.http.sourceIp`): an
/// IPv4 address, or the /64 prefix of an IPv6 address (one subscriber's network; a client
/// can change the rest at will).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceAddress(String);

impl SourceAddress {
    pub fn of(ip: &str) -> Self {
        match ip.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Self(v4.to_string()),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(v4.to_string()),
                None => {
                    let s = v6.segments();
                    Self(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
                }
            },
            Err(_) => Self::default(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SourceAddress {
    /// No usable address (never on API Gateway): all such requests share one budget.
    fn default() -> Self {
        Self("unknown".into())
    }
}

impl std::fmt::Display for SourceAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The budgets beside a subject's own, per hour (template parameters
/// `FailuresPerAddressPerHour` and `FailuresPerHour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureBudgets {
    pub per_address_per_hour: u32,
    pub global_per_hour: u32,
}

impl Default for FailureBudgets {
    fn default() -> Self {
        Self { per_address_per_hour: 20, global_per_hour: 5_000 }
    }
}

/// A subject's own budget: its window key prefix and its limit per hour.
#[derive(Debug, Clone)]
pub struct Subject {
    pub key: String,
    pub per_hour: u32,
}

/// The slots one attempt took; given back together when the attempt was no guess.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use = "slots are given back on success or kept on failure"]
pub struct Slots(Vec<String>);

/// A budget is used up until the hour ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    pub retry_after: Duration,
}

fn hour(clock: &impl Clock) -> i64 {
    clock.now().unix_timestamp().div_euclid(3600)
}

/// Takes one slot of every budget the attempt counts against (the subject's own, if any;
/// the source address's; the deployment's) in one concurrent round. When one of them is used
/// up, the attempt is refused and the slots it did take are given back: a refused attempt
/// is no guess.
pub async fn take(
    limiter: &impl AttemptLimiter,
    clock: &impl Clock,
    budgets: &FailureBudgets,
    source: &SourceAddress,
    subject: Option<&Subject>,
) -> Result<Result<Slots, Exhausted>, StoreError> {
    let hour = hour(clock);
    let expires_at = (hour + 2) * 3600;
    let windows: Vec<(String, u32)> = subject
        .map(|s| (format!("{}#{hour}", s.key), s.per_hour))
        .into_iter()
        .chain([
            (format!("failures#address#{source}#{hour}"), budgets.per_address_per_hour),
            (format!("failures#global#{hour}"), budgets.global_per_hour),
        ])
        .collect();
    let results =
        futures::future::join_all(windows.iter().map(|(key, limit)| limiter.attempt(key, *limit, expires_at))).await;
    let mut taken = Slots::default();
    let (mut refused, mut failed) = (false, None);
    for ((key, _), result) in windows.into_iter().zip(results) {
        match result {
            Ok(true) => taken.0.push(key),
            Ok(false) => refused = true,
            Err(e) => failed = Some(e),
        }
    }
    if refused || failed.is_some() {
        give_back(limiter, taken).await;
        if let Some(e) = failed {
            return Err(e);
        }
        let next_hour = time::OffsetDateTime::from_unix_timestamp((hour + 1) * 3600).unwrap_or(clock.now());
        return Ok(Err(Exhausted { retry_after: (next_hour - clock.now()).max(Duration::seconds(1)) }));
    }
    Ok(Ok(taken))
}

/// Gives an attempt's slots back, concurrently. A failure only leaves the budgets tighter
/// for the hour: logged, not answered.
pub async fn give_back(limiter: &impl AttemptLimiter, slots: Slots) {
    let results = futures::future::join_all(slots.0.iter().map(|key| limiter.give_back(key))).await;
    for e in results.into_iter().filter_map(Result::err) {
        tracing::warn!(error = %e, "attempt slot not given back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::memory::MemoryLimiter;
    use crate::testkit::{NOW, run};

    fn subject(key: &str, per_hour: u32) -> Subject {
        Subject { key: key.into(), per_hour }
    }

    #[test]
    fn ipv6_counts_by_its_64_prefix_and_mapped_ipv4_as_ipv4() {
        assert_eq!(SourceAddress::of("203.0.113.7").as_str(), "203.0.113.7");
        assert_eq!(SourceAddress::of("2001:db8:1:2:aaaa::1").as_str(), "2001:db8:1:2::/64");
        assert_eq!(SourceAddress::of("2001:db8:1:2:ffff:1:2:3"), SourceAddress::of("2001:db8:1:2::9"));
        assert_ne!(SourceAddress::of("2001:db8:1:2::1"), SourceAddress::of("2001:db8:1:3::1"));
        assert_eq!(SourceAddress::of("::ffff:203.0.113.7").as_str(), "203.0.113.7");
        assert_eq!(SourceAddress::of("not an address"), SourceAddress::default());
        assert_eq!(SourceAddress::of("").as_str(), "unknown");
    }

    #[test]
    fn failures_from_one_address_are_bounded_across_subjects() {
        let limiter = MemoryLimiter::default();
        let clock = FixedClock(NOW);
        let budgets = FailureBudgets { per_address_per_hour: 3, global_per_hour: 100 };
        let here = SourceAddress::of("203.0.113.7");
        for n in 0..3 {
            let own = subject(&format!("identification#100000{n}"), 10);
            assert!(run(take(&limiter, &clock, &budgets, &here, Some(&own))).unwrap().is_ok(), "guess {n}");
        }
        let fourth = run(take(&limiter, &clock, &budgets, &here, Some(&subject("identification#1000009", 10))));
        let exhausted = fourth.unwrap().unwrap_err();
        // Until the hour ends: NOW is 09:00:00, so a full hour.
        assert_eq!(exhausted.retry_after, Duration::hours(1));
        // The refused guess took nothing: its customer number's budget is untouched.
        let windows = limiter.windows();
        assert!(windows.iter().filter(|(k, _)| k.starts_with("identification#1000009")).all(|(_, (n, _))| *n == 0));
        // Another address still has its budget.
        let there = SourceAddress::of("198.51.100.1");
        assert!(run(take(&limiter, &clock, &budgets, &there, None)).unwrap().is_ok());
        // The next hour is a new window.
        let later = FixedClock(NOW + Duration::hours(1));
        assert!(run(take(&limiter, &later, &budgets, &here, None)).unwrap().is_ok());
    }

    #[test]
    fn the_global_budget_bounds_guesses_from_many_addresses() {
        let limiter = MemoryLimiter::default();
        let clock = FixedClock(NOW + Duration::minutes(59));
        let budgets = FailureBudgets { per_address_per_hour: 10, global_per_hour: 4 };
        for n in 0..4 {
            let from = SourceAddress::of(&format!("198.51.100.{n}"));
            assert!(run(take(&limiter, &clock, &budgets, &from, None)).unwrap().is_ok());
        }
        let from = SourceAddress::of("198.51.100.99");
        let refused = run(take(&limiter, &clock, &budgets, &from, None)).unwrap().unwrap_err();
        assert_eq!(refused.retry_after, Duration::minutes(1), "the rest of the hour");
    }

    #[test]
    fn an_attempt_that_was_no_guess_gives_every_slot_back() {
        let limiter = MemoryLimiter::default();
        let clock = FixedClock(NOW);
        let budgets = FailureBudgets { per_address_per_hour: 1, global_per_hour: 1 };
        let here = SourceAddress::of("203.0.113.7");
        for _ in 0..5 {
            let slots = run(take(&limiter, &clock, &budgets, &here, Some(&subject("login#x", 1)))).unwrap().unwrap();
            assert_eq!(slots.0.len(), 3);
            run(give_back(&limiter, slots));
        }
        assert_eq!(limiter.total(), 0);
        // A subject's own limit refuses too, and gives the other two slots back.
        let kept = run(take(&limiter, &clock, &budgets, &here, Some(&subject("reset#x", 0)))).unwrap();
        assert!(kept.is_err());
        assert_eq!(limiter.total(), 0);
    }
}
