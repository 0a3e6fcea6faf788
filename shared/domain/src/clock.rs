//! "Now" and "today" as a port, so that rules about dates can be tested with a fixed clock.
//! Business dates are those of the utility's customers: Europe/Berlin.

use time::{Date, OffsetDateTime};
use time_tz::{OffsetDateTimeExt, timezones};

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;

    /// Today's date in Europe/Berlin.
    fn today(&self) -> Date {
        self.now().to_timezone(timezones::db::europe::BERLIN).date()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that always says the same instant (tests).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn today_is_the_berlin_date() {
        // 23:30 UTC on 30 November is already 1 December in Berlin (UTC+1).
        assert_eq!(FixedClock(datetime!(2026-11-30 23:30 UTC)).today(), date!(2026 - 12 - 01));
        // In summer Berlin is UTC+2.
        assert_eq!(FixedClock(datetime!(2026-06-30 22:30 UTC)).today(), date!(2026 - 07 - 01));
        assert_eq!(FixedClock(datetime!(2026-06-30 21:30 UTC)).today(), date!(2026 - 06 - 30));
    }
}
