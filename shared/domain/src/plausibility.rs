//! Plausibility of a submitted meter reading, register by register.
//!
//! A reading is refused when its date lies in the future (Europe/Berlin) or before the
//! register's last reading, when the registers given are not exactly the meter's, when a
//! value shows more decimals than the register or more digits than the meter has, or when
//! it is lower than the last reading and cannot be a rollover (a counter that passed
//! 10^digits and started again at zero) with a plausible consumption.
//!
//! Where the CRM forecasts a register's annual consumption `E`, a reading must also lie in
//! the plausible range of its date: with `d` days since the last reading `L`,
//!
//! ```text
//! min = L + E / 365 × d × lower_factor
//! max = L + E / 365 × max(d, min_days) × upper_factor
//! ```
//!
//! (rounded outward to the register's decimals; past 10^digits the range wraps through zero).
//! A value outside is refused as `READING_IMPLAUSIBLE` with the range, unless the customer
//! confirms it: then it is accepted and marked `implausible` for the CRM to check.

use crate::entities::{LastReading, MeterRecord};
use crate::ids::RegisterCode;
use rust_decimal::Decimal;
use serde::Serialize;
use time::Date;

/// Tunable limits of the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingPolicy {
    /// A lower value counts as a rollover only if the consumption it implies is at most
    /// this share of the meter's range (10^digits).
    pub rollover_max_share: Decimal,
    /// The least consumption, as a share of the expected one, that is plausible
    /// (`ReadingLowerFactor`; 0: none at all, a vacant flat).
    pub lower_factor: Decimal,
    /// The most consumption, as a multiple of the expected one (`ReadingUpperFactor`).
    pub upper_factor: Decimal,
    /// The upper bound allows at least this many days' consumption, so that a reading a day
    /// after the last one is not held to one day's average (`ReadingMinDays`).
    pub min_days: u32,
}

impl Default for ReadingPolicy {
    fn default() -> Self {
        Self {
            rollover_max_share: Decimal::new(1, 1),
            lower_factor: Decimal::ZERO,
            upper_factor: Decimal::from(3),
            min_days: 30,
        }
    }
}

/// The values a register may plausibly show on a date. `max < min` when the range wraps
/// through zero (the counter passes 10^digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRange {
    pub min: Decimal,
    pub max: Decimal,
}

/// The plausible consumption of `register` from its last reading to `date`, and the values
/// that range means; `None` without a forecast or a last reading (only the other rules hold).
pub fn allowed_range(
    register: &crate::entities::Register,
    last: Option<&LastReading>,
    date: Date,
    policy: &ReadingPolicy,
) -> Option<(Decimal, Decimal, AllowedRange)> {
    let annual = register.expected_annual_consumption?;
    let last = last?;
    let days = Decimal::from((date - last.date).whole_days().max(0));
    let per_day = annual / Decimal::from(365);
    let low = (per_day * days * policy.lower_factor)
        .round_dp_with_strategy(register.decimals, rust_decimal::RoundingStrategy::ToNegativeInfinity);
    let high = (per_day * days.max(Decimal::from(policy.min_days)) * policy.upper_factor)
        .round_dp_with_strategy(register.decimals, rust_decimal::RoundingStrategy::ToPositiveInfinity);
    let range = Decimal::from(10u64.pow(register.digits));
    let wrap = |v: Decimal| if v >= range { v % range } else { v };
    Some((low, high, AllowedRange { min: wrap(last.value + low), max: wrap(last.value + high) }))
}

/// One value as submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmittedValue {
    pub register: RegisterCode,
    pub value: Decimal,
}

/// One value that passed every rule, with what the rules learned about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedValue {
    pub register: RegisterCode,
    pub value: Decimal,
    /// Consumption since the last reading (rollover taken into account).
    pub consumption: Option<Decimal>,
    pub rollover: bool,
    /// Outside the plausible range and confirmed by the customer: for the CRM to check.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub implausible: bool,
    #[serde(skip)]
    pub previous: Option<LastReading>,
}

/// Where a violated rule points in the submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ReadingDate,
    Values,
    Value(usize),
}

/// A rule the reading broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleViolation {
    DateInFuture {
        today: Date,
    },
    /// After the day the customer's supply through this meter ended (a move-out, an exchange).
    AfterSupplyEnd {
        end: Date,
    },
    /// After the day the meter was removed (a meter exchange): the new meter counts from then.
    AfterMeterRemoval {
        removed_on: Date,
    },
    DateBeforeLastReading {
        register: RegisterCode,
        last_date: Date,
    },
    RegisterSetMismatch {
        expected: Vec<RegisterCode>,
    },
    Negative {
        index: usize,
    },
    TooManyDecimals {
        index: usize,
        allowed: u32,
    },
    ExceedsMeterDigits {
        index: usize,
        digits: u32,
    },
    BelowLastReading {
        index: usize,
        last_value: Decimal,
    },
    /// Outside the plausible range of its date ([`allowed_range`]), not confirmed.
    OutsideRange {
        index: usize,
        register: RegisterCode,
        range: AllowedRange,
    },
}

impl RuleViolation {
    /// Stable machine-readable code, documented in the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DateInFuture { .. } => "READING_DATE_IN_FUTURE",
            Self::AfterSupplyEnd { .. } => "READING_AFTER_SUPPLY_END",
            Self::AfterMeterRemoval { .. } => "READING_AFTER_METER_REMOVAL",
            Self::DateBeforeLastReading { .. } => "READING_DATE_BEFORE_LAST_READING",
            Self::RegisterSetMismatch { .. } => "REGISTER_SET_MISMATCH",
            Self::Negative { .. } => "READING_NEGATIVE",
            Self::TooManyDecimals { .. } => "READING_TOO_MANY_DECIMALS",
            Self::ExceedsMeterDigits { .. } => "READING_EXCEEDS_METER_DIGITS",
            Self::BelowLastReading { .. } => "READING_BELOW_LAST_READING",
            Self::OutsideRange { .. } => "READING_IMPLAUSIBLE",
        }
    }

    pub fn field(&self) -> Field {
        match self {
            Self::DateInFuture { .. }
            | Self::AfterSupplyEnd { .. }
            | Self::AfterMeterRemoval { .. }
            | Self::DateBeforeLastReading { .. } => Field::ReadingDate,
            Self::RegisterSetMismatch { .. } => Field::Values,
            Self::Negative { index }
            | Self::TooManyDecimals { index, .. }
            | Self::ExceedsMeterDigits { index, .. }
            | Self::BelowLastReading { index, .. }
            | Self::OutsideRange { index, .. } => Field::Value(*index),
        }
    }

    pub fn message(&self) -> String {
        use crate::entities::iso_date::format;
        match self {
            Self::DateInFuture { today } => format!("the reading date lies after today ({})", format(*today)),
            Self::AfterSupplyEnd { end } => {
                format!(
                    "your supply through this meter ended on {}; a reading can be dated that day at the latest",
                    format(*end)
                )
            }
            Self::AfterMeterRemoval { removed_on } => format!(
                "this meter was removed on {}; a reading can be dated that day at the latest, later ones belong to the new meter",
                format(*removed_on)
            ),
            Self::DateBeforeLastReading { register, last_date } => {
                format!("register {register} was last read on {}; a new reading cannot be older", format(*last_date))
            }
            Self::RegisterSetMismatch { expected } => {
                let list: Vec<&str> = expected.iter().map(RegisterCode::as_str).collect();
                format!("give exactly one value for each register of the meter: {}", list.join(", "))
            }
            Self::Negative { .. } => "a meter value cannot be negative".to_owned(),
            Self::TooManyDecimals { allowed, .. } => format!("this register shows {allowed} decimal places"),
            Self::ExceedsMeterDigits { digits, .. } => {
                format!("this register has only {digits} digits before the decimal point")
            }
            Self::BelowLastReading { last_value, .. } => {
                format!("the value is below the last reading ({last_value}) and is not a plausible meter rollover")
            }
            Self::OutsideRange { register, range, .. } => format!(
                "register {register} is expected between {} and {} on this date; check the value, or confirm it \
                 (confirmedImplausible) if it is right",
                range.min, range.max
            ),
        }
    }
}

/// Checks a reading against the meter and its last readings.
pub fn check_reading(
    meter: &MeterRecord,
    reading_date: Date,
    values: &[SubmittedValue],
    today: Date,
    policy: &ReadingPolicy,
) -> Result<Vec<AcceptedValue>, Vec<RuleViolation>> {
    check_reading_confirmed(meter, reading_date, values, today, policy, false)
}

/// [`check_reading`], where the customer may have confirmed values outside the plausible
/// range: they are accepted and marked `implausible`.
pub fn check_reading_confirmed(
    meter: &MeterRecord,
    reading_date: Date,
    values: &[SubmittedValue],
    today: Date,
    policy: &ReadingPolicy,
    confirmed_implausible: bool,
) -> Result<Vec<AcceptedValue>, Vec<RuleViolation>> {
    let mut violations = Vec::new();
    if reading_date > today {
        violations.push(RuleViolation::DateInFuture { today });
    }
    if let Some(end) = meter.contract_end_date.filter(|end| reading_date > *end) {
        violations.push(RuleViolation::AfterSupplyEnd { end });
    }
    if let Some(removed_on) = meter.meter.removed_on.filter(|removed| reading_date > *removed) {
        violations.push(RuleViolation::AfterMeterRemoval { removed_on });
    }

    let registers = &meter.meter.registers;
    let same_set = values.len() == registers.len()
        && registers.iter().all(|r| values.iter().filter(|v| v.register == r.code).count() == 1);
    if !same_set {
        violations
            .push(RuleViolation::RegisterSetMismatch { expected: registers.iter().map(|r| r.code.clone()).collect() });
        return Err(violations);
    }

    let mut accepted = Vec::with_capacity(values.len());
    for register in registers {
        let Some((index, submitted)) = values.iter().enumerate().find(|(_, v)| v.register == register.code) else {
            continue;
        };
        let value = submitted.value.normalize();
        let previous = meter.last_reading(&register.code).cloned();
        if let Some(last) = &previous
            && reading_date < last.date
        {
            violations
                .push(RuleViolation::DateBeforeLastReading { register: register.code.clone(), last_date: last.date });
        }
        if value.is_sign_negative() {
            violations.push(RuleViolation::Negative { index });
            continue;
        }
        if value.scale() > register.decimals {
            violations.push(RuleViolation::TooManyDecimals { index, allowed: register.decimals });
            continue;
        }
        let range = Decimal::from(10u64.pow(register.digits));
        if value >= range {
            violations.push(RuleViolation::ExceedsMeterDigits { index, digits: register.digits });
            continue;
        }
        let (consumption, rollover) = match &previous {
            None => (None, false),
            Some(last) if value >= last.value => (Some(value - last.value), false),
            Some(last) => {
                let through_zero = value + range - last.value;
                if through_zero <= range * policy.rollover_max_share {
                    (Some(through_zero), true)
                } else {
                    violations.push(RuleViolation::BelowLastReading { index, last_value: last.value });
                    continue;
                }
            }
        };
        let mut implausible = false;
        if let (Some(used), Some((low, high, range))) =
            (consumption, allowed_range(register, previous.as_ref(), reading_date, policy))
            && (used < low || used > high)
        {
            if !confirmed_implausible {
                violations.push(RuleViolation::OutsideRange { index, register: register.code.clone(), range });
                continue;
            }
            implausible = true;
        }
        accepted.push(AcceptedValue {
            register: register.code.clone(),
            value: submitted.value,
            consumption,
            rollover,
            implausible,
            previous,
        });
    }

    if violations.is_empty() { Ok(accepted) } else { Err(violations) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{Commodity, Meter, ReadingSource, Register};
    use crate::ids::{ContractNumber, CustomerNumber, InstallationId, MeterNumber};
    use proptest::prelude::*;
    use std::str::FromStr;
    use time::macros::date;

    fn code(s: &str) -> RegisterCode {
        RegisterCode::parse(s).unwrap()
    }

    fn meter(registers: &[(&str, u32, u32, Option<&str>)]) -> MeterRecord {
        MeterRecord {
            partner_number: CustomerNumber::parse("1000001").unwrap(),
            contract_number: ContractNumber::parse("5000001").unwrap(),
            contract_end_date: None,
            version: 0,
            meter: Meter {
                meter_number: MeterNumber::parse("1EMH0012345678").unwrap(),
                installation_id: InstallationId::parse("A-7000001").unwrap(),
                commodity: Commodity::Electricity,
                unit: "kWh".into(),
                registers: registers
                    .iter()
                    .map(|(c, digits, decimals, _)| Register {
                        code: code(c),
                        obis: "1-0:1.8.0".into(),
                        digits: *digits,
                        decimals: *decimals,
                        expected_annual_consumption: None,
                    })
                    .collect(),
                removed_on: None,
            },
            last_readings: registers
                .iter()
                .filter_map(|(c, _, _, last)| {
                    last.map(|v| LastReading {
                        register: code(c),
                        date: date!(2026 - 11 - 30),
                        value: Decimal::from_str(v).unwrap(),
                        source: ReadingSource::Customer,
                    })
                })
                .collect(),
        }
    }

    fn values(v: &[(&str, &str)]) -> Vec<SubmittedValue> {
        v.iter().map(|(c, x)| SubmittedValue { register: code(c), value: Decimal::from_str(x).unwrap() }).collect()
    }

    const TODAY: Date = date!(2026 - 12 - 01);

    fn codes(r: Result<Vec<AcceptedValue>, Vec<RuleViolation>>) -> Vec<&'static str> {
        r.err().unwrap_or_default().iter().map(RuleViolation::code).collect()
    }

    /// Erika's HT/NT meter: last readings of 2026-11-30, forecasts as the import derives them
    /// from a year of readings (HT 26335 → 29735, NT 17265 → 19613).
    fn erikas_meter() -> MeterRecord {
        let mut m = meter(&[("HT", 6, 0, Some("29735")), ("NT", 6, 0, Some("19613"))]);
        m.meter.registers[0].expected_annual_consumption = Some(Decimal::from(3400));
        m.meter.registers[1].expected_annual_consumption = Some(Decimal::from(2348));
        m
    }

    #[test]
    fn the_plausible_range_is_the_expected_consumption_of_the_days_since_times_the_factors() {
        let m = erikas_meter();
        let p = ReadingPolicy::default();
        let range = |i: usize, date| allowed_range(&m.meter.registers[i], m.last_readings.get(i), date, &p).unwrap();
        // One day later: at least 30 days count for the upper bound, 3400 / 365 × 30 × 3 = 838.36 → 839.
        assert_eq!(
            range(0, TODAY),
            (Decimal::ZERO, Decimal::from(839), AllowedRange { min: Decimal::from(29735), max: Decimal::from(30574) })
        );
        assert_eq!(range(1, TODAY).2, AllowedRange { min: Decimal::from(19613), max: Decimal::from(20192) });
        // 91 days later: 3400 / 365 × 91 × 3 = 2543.01 → 2544 (outward); with a lower factor of 0.2: 169.53 → 169.
        let p = ReadingPolicy { lower_factor: Decimal::new(2, 1), ..p };
        let later = date!(2027 - 03 - 01);
        let (low, high, _) = allowed_range(&m.meter.registers[0], m.last_readings.first(), later, &p).unwrap();
        assert_eq!((low, high), (Decimal::from(169), Decimal::from(2544)));
        // Near the register's maximum the range wraps through zero.
        let mut full = meter(&[("SINGLE", 5, 0, Some("99740"))]);
        full.meter.registers[0].expected_annual_consumption = Some(Decimal::from(2900));
        let wrapped =
            allowed_range(&full.meter.registers[0], full.last_readings.first(), TODAY, &ReadingPolicy::default());
        assert_eq!(wrapped.unwrap().2, AllowedRange { min: Decimal::from(99740), max: Decimal::from(456) });
        // Without a forecast or a last reading: no range.
        let plain = meter(&[("HT", 6, 0, Some("29735"))]);
        assert!(allowed_range(&plain.meter.registers[0], plain.last_readings.first(), TODAY, &p).is_none());
        assert!(allowed_range(&m.meter.registers[0], None, TODAY, &p).is_none());
    }

    #[test]
    fn a_typo_outside_the_range_is_refused_with_it_unless_confirmed() {
        let m = erikas_meter();
        let p = ReadingPolicy::default();
        let typo = values(&[("HT", "99810"), ("NT", "19650")]);
        let refused = check_reading(&m, TODAY, &typo, TODAY, &p).unwrap_err();
        assert_eq!(
            refused,
            [RuleViolation::OutsideRange {
                index: 0,
                register: code("HT"),
                range: AllowedRange { min: Decimal::from(29735), max: Decimal::from(30574) }
            }]
        );
        assert_eq!(refused[0].code(), "READING_IMPLAUSIBLE");
        assert_eq!(refused[0].field(), Field::Value(0));
        assert!(refused[0].message().contains("between 29735 and 30574"), "{}", refused[0].message());
        // The correct reading passes; the edges of the range are inside it.
        assert!(check_reading(&m, TODAY, &values(&[("HT", "29810"), ("NT", "19650")]), TODAY, &p).is_ok());
        assert!(check_reading(&m, TODAY, &values(&[("HT", "30574"), ("NT", "19613")]), TODAY, &p).is_ok());
        assert!(check_reading(&m, TODAY, &values(&[("HT", "30575"), ("NT", "19613")]), TODAY, &p).is_err());
        // Confirmed: accepted, and marked for the CRM.
        let accepted = check_reading_confirmed(&m, TODAY, &typo, TODAY, &p, true).unwrap();
        assert_eq!((accepted[0].implausible, accepted[1].implausible), (true, false));
        assert_eq!(accepted[0].consumption, Some(Decimal::from(70075)));
        // A confirmation does not lift the other rules.
        let below = values(&[("HT", "29000"), ("NT", "19650")]);
        assert_eq!(codes(check_reading_confirmed(&m, TODAY, &below, TODAY, &p, true)), ["READING_BELOW_LAST_READING"]);
    }

    #[test]
    fn a_plausible_ht_nt_reading_is_accepted_with_its_consumption() {
        let m = meter(&[("HT", 6, 0, Some("24000")), ("NT", 6, 0, Some("19613"))]);
        let ok =
            check_reading(&m, TODAY, &values(&[("NT", "19650"), ("HT", "24100")]), TODAY, &ReadingPolicy::default())
                .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].register.as_str(), "HT");
        assert_eq!(ok[0].consumption, Some(Decimal::from(100)));
        assert_eq!(ok[1].consumption, Some(Decimal::from(37)));
    }

    #[test]
    fn each_rule_has_its_code() {
        let p = ReadingPolicy::default();
        let m = meter(&[("HT", 6, 0, Some("24000")), ("NT", 6, 0, Some("19613"))]);
        assert_eq!(
            codes(check_reading(&m, date!(2026 - 12 - 02), &values(&[("HT", "24001"), ("NT", "19614")]), TODAY, &p)),
            ["READING_DATE_IN_FUTURE"]
        );
        assert_eq!(
            codes(check_reading(&m, date!(2026 - 11 - 29), &values(&[("HT", "24001"), ("NT", "19614")]), TODAY, &p)),
            ["READING_DATE_BEFORE_LAST_READING", "READING_DATE_BEFORE_LAST_READING"]
        );
        assert_eq!(codes(check_reading(&m, TODAY, &values(&[("HT", "24001")]), TODAY, &p)), ["REGISTER_SET_MISMATCH"]);
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("HT", "24001"), ("HT", "24002")]), TODAY, &p)),
            ["REGISTER_SET_MISMATCH"]
        );
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("HT", "24001"), ("SINGLE", "1")]), TODAY, &p)),
            ["REGISTER_SET_MISMATCH"]
        );
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("HT", "24001.5"), ("NT", "19614")]), TODAY, &p)),
            ["READING_TOO_MANY_DECIMALS"]
        );
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("HT", "1000000"), ("NT", "19614")]), TODAY, &p)),
            ["READING_EXCEEDS_METER_DIGITS"]
        );
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("HT", "23999"), ("NT", "19614")]), TODAY, &p)),
            ["READING_BELOW_LAST_READING"]
        );
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("HT", "-1"), ("NT", "19614")]), TODAY, &p)),
            ["READING_NEGATIVE"]
        );
    }

    #[test]
    fn the_same_day_as_the_last_reading_is_allowed() {
        let m = meter(&[("SINGLE", 6, 0, Some("100"))]);
        assert!(
            check_reading(&m, date!(2026 - 11 - 30), &values(&[("SINGLE", "100")]), TODAY, &ReadingPolicy::default())
                .is_ok()
        );
    }

    #[test]
    fn a_meter_near_its_maximum_may_roll_over() {
        // The demo's five-digit meter stands at 99740.
        let m = meter(&[("SINGLE", 5, 0, Some("99740"))]);
        let ok = check_reading(&m, TODAY, &values(&[("SINGLE", "00120")]), TODAY, &ReadingPolicy::default()).unwrap();
        assert!(ok[0].rollover);
        assert_eq!(ok[0].consumption, Some(Decimal::from(380)));
        // 50 000 kWh in a day is no rollover but a typo.
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("SINGLE", "50000")]), TODAY, &ReadingPolicy::default())),
            ["READING_BELOW_LAST_READING"]
        );
    }

    #[test]
    fn gas_registers_take_their_decimals_and_keep_them() {
        let m = meter(&[("SINGLE", 5, 3, Some("5532.275"))]);
        let ok =
            check_reading(&m, TODAY, &values(&[("SINGLE", "5540.100")]), TODAY, &ReadingPolicy::default()).unwrap();
        assert_eq!(ok[0].value.to_string(), "5540.100");
        assert_eq!(ok[0].consumption.unwrap().to_string(), "7.825");
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("SINGLE", "5540.1001")]), TODAY, &ReadingPolicy::default())),
            ["READING_TOO_MANY_DECIMALS"]
        );
    }

    #[test]
    fn a_first_reading_has_no_consumption() {
        let m = meter(&[("SINGLE", 6, 0, None)]);
        let ok = check_reading(&m, TODAY, &values(&[("SINGLE", "5")]), TODAY, &ReadingPolicy::default()).unwrap();
        assert_eq!(ok[0].consumption, None);
    }

    #[test]
    fn the_register_set_must_be_exactly_the_meters() {
        let p = ReadingPolicy::default();
        let m = meter(&[("HT", 6, 0, Some("24000")), ("NT", 6, 0, Some("19613"))]);
        let r = check_reading(&m, TODAY, &values(&[("HT", "24001"), ("NT", "19614"), ("SINGLE", "1")]), TODAY, &p);
        assert_eq!(r.unwrap_err(), [RuleViolation::RegisterSetMismatch { expected: vec![code("HT"), code("NT")] }]);
        // The date is still judged when the set is wrong.
        let r = check_reading(&m, date!(2026 - 12 - 02), &values(&[("HT", "24001")]), TODAY, &p);
        assert_eq!(codes(r), ["READING_DATE_IN_FUTURE", "REGISTER_SET_MISMATCH"]);
    }

    #[test]
    fn every_value_is_judged_and_every_violation_reported() {
        let p = ReadingPolicy::default();
        let m = meter(&[("HT", 6, 0, Some("24000")), ("NT", 6, 0, Some("19613"))]);
        let r = check_reading(&m, date!(2026 - 11 - 29), &values(&[("NT", "-5"), ("HT", "24000.5")]), TODAY, &p);
        assert_eq!(
            r.unwrap_err(),
            [
                RuleViolation::DateBeforeLastReading { register: code("HT"), last_date: date!(2026 - 11 - 30) },
                RuleViolation::TooManyDecimals { index: 1, allowed: 0 },
                RuleViolation::DateBeforeLastReading { register: code("NT"), last_date: date!(2026 - 11 - 30) },
                RuleViolation::Negative { index: 0 },
            ]
        );
        let r = check_reading(&m, TODAY, &values(&[("NT", "1000000"), ("HT", "1")]), TODAY, &p);
        assert_eq!(
            r.unwrap_err(),
            [
                RuleViolation::BelowLastReading { index: 1, last_value: Decimal::from(24000) },
                RuleViolation::ExceedsMeterDigits { index: 0, digits: 6 },
            ]
        );
    }

    #[test]
    fn the_limits_of_a_register() {
        let p = ReadingPolicy::default();
        let m = meter(&[("SINGLE", 6, 1, None)]);
        let check = |v: &str| codes(check_reading(&m, TODAY, &values(&[("SINGLE", v)]), TODAY, &p));
        assert!(check("999999.9").is_empty(), "the largest value the register shows");
        assert_eq!(check("1000000"), ["READING_EXCEEDS_METER_DIGITS"]);
        assert!(check("0").is_empty());
        assert!(check("12.50").is_empty(), "trailing zeros are no decimals");
        assert_eq!(check("12.55"), ["READING_TOO_MANY_DECIMALS"]);
        let ok = check_reading(&m, TODAY, &values(&[("SINGLE", "12.50")]), TODAY, &p).unwrap();
        assert_eq!(ok[0].value.to_string(), "12.50", "the value is kept as given");
    }

    #[test]
    fn a_rollover_up_to_exactly_the_share_is_accepted() {
        let p = ReadingPolicy::default();
        // Five digits: the range is 100 000, the share 10 000.
        let m = meter(&[("SINGLE", 5, 0, Some("99000"))]);
        let ok = check_reading(&m, TODAY, &values(&[("SINGLE", "9000")]), TODAY, &p).unwrap();
        assert_eq!((ok[0].consumption, ok[0].rollover), (Some(Decimal::from(10_000)), true));
        assert_eq!(ok[0].previous.as_ref().map(|l| l.value), Some(Decimal::from(99_000)));
        assert_eq!(
            codes(check_reading(&m, TODAY, &values(&[("SINGLE", "9001")]), TODAY, &p)),
            ["READING_BELOW_LAST_READING"]
        );
        let half = ReadingPolicy { rollover_max_share: Decimal::new(5, 1), ..ReadingPolicy::default() };
        assert!(check_reading(&m, TODAY, &values(&[("SINGLE", "9001")]), TODAY, &half).is_ok());
        // The same value again is no consumption, and no rollover.
        let same = check_reading(&m, TODAY, &values(&[("SINGLE", "99000")]), TODAY, &p).unwrap();
        assert_eq!((same[0].consumption, same[0].rollover), (Some(Decimal::ZERO), false));
    }

    #[test]
    fn each_violation_points_at_its_field_and_explains_itself() {
        let d = date!(2026 - 12 - 01);
        let cases = [
            (
                RuleViolation::DateInFuture { today: d },
                Field::ReadingDate,
                "the reading date lies after today (2026-12-01)",
            ),
            (
                RuleViolation::DateBeforeLastReading { register: code("HT"), last_date: d },
                Field::ReadingDate,
                "register HT was last read on 2026-12-01; a new reading cannot be older",
            ),
            (
                RuleViolation::RegisterSetMismatch { expected: vec![code("HT"), code("NT")] },
                Field::Values,
                "give exactly one value for each register of the meter: HT, NT",
            ),
            (RuleViolation::Negative { index: 1 }, Field::Value(1), "a meter value cannot be negative"),
            (
                RuleViolation::TooManyDecimals { index: 2, allowed: 3 },
                Field::Value(2),
                "this register shows 3 decimal places",
            ),
            (
                RuleViolation::ExceedsMeterDigits { index: 3, digits: 5 },
                Field::Value(3),
                "this register has only 5 digits before the decimal point",
            ),
            (
                RuleViolation::BelowLastReading { index: 4, last_value: Decimal::from(99740) },
                Field::Value(4),
                "the value is below the last reading (99740) and is not a plausible meter rollover",
            ),
        ];
        for (v, field, message) in cases {
            assert_eq!((v.field(), v.message().as_str()), (field, message), "{v:?}");
        }
    }

    proptest! {
        #[test]
        fn rollover_is_accepted_exactly_within_the_share(digits in 3u32..8, last_frac in 0.0f64..1.0, value_frac in 0.0f64..1.0) {
            let range = 10u64.pow(digits);
            let last = ((range as f64) * last_frac) as u64 % range;
            let value = ((range as f64) * value_frac) as u64 % range;
            let last_s = last.to_string();
            let m = meter(&[("SINGLE", digits, 0, Some(&last_s))]);
            let result = check_reading(&m, TODAY, &values(&[("SINGLE", &value.to_string())]), TODAY, &ReadingPolicy::default());
            let expected_ok = value >= last || (value + range - last) * 10 <= range;
            prop_assert_eq!(result.is_ok(), expected_ok);
            if let Ok(ok) = result {
                let consumption = if value >= last { value - last } else { value + range - last };
                prop_assert_eq!(ok[0].consumption, Some(Decimal::from(consumption)));
                prop_assert_eq!(ok[0].rollover, value < last);
            }
        }

        #[test]
        fn decimals_beyond_the_register_are_always_refused(decimals in 0u32..4, extra in 1u32..3, mantissa in 1i64..1_000_000) {
            let scale = decimals + extra;
            let v = Decimal::new(mantissa * 10 + 1, scale);
            let m = meter(&[("SINGLE", 9, decimals, None)]);
            let r = check_reading(&m, TODAY, &[SubmittedValue { register: code("SINGLE"), value: v }], TODAY, &ReadingPolicy::default());
            prop_assert_eq!(codes(r), vec!["READING_TOO_MANY_DECIMALS"]);
        }
    }
}
