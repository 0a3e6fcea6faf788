//! Plausibility of a submitted meter reading, register by register.
//!
//! A reading is refused when its date lies in the future (Europe/Berlin) or before the
//! register's last reading, when the registers given are not exactly the meter's, when a
//! value shows more decimals than the register or more digits than the meter has, or when
//! it is lower than the last reading and cannot be a rollover (a counter that passed
//! 10^digits and started again at zero) with a plausible consumption.

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
}

impl Default for ReadingPolicy {
    fn default() -> Self {
        Self { rollover_max_share: Decimal::new(1, 1) }
    }
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
    DateInFuture { today: Date },
    DateBeforeLastReading { register: RegisterCode, last_date: Date },
    RegisterSetMismatch { expected: Vec<RegisterCode> },
    Negative { index: usize },
    TooManyDecimals { index: usize, allowed: u32 },
    ExceedsMeterDigits { index: usize, digits: u32 },
    BelowLastReading { index: usize, last_value: Decimal },
}

impl RuleViolation {
    /// Stable machine-readable code, documented in the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DateInFuture { .. } => "READING_DATE_IN_FUTURE",
            Self::DateBeforeLastReading { .. } => "READING_DATE_BEFORE_LAST_READING",
            Self::RegisterSetMismatch { .. } => "REGISTER_SET_MISMATCH",
            Self::Negative { .. } => "READING_NEGATIVE",
            Self::TooManyDecimals { .. } => "READING_TOO_MANY_DECIMALS",
            Self::ExceedsMeterDigits { .. } => "READING_EXCEEDS_METER_DIGITS",
            Self::BelowLastReading { .. } => "READING_BELOW_LAST_READING",
        }
    }

    pub fn field(&self) -> Field {
        match self {
            Self::DateInFuture { .. } | Self::DateBeforeLastReading { .. } => Field::ReadingDate,
            Self::RegisterSetMismatch { .. } => Field::Values,
            Self::Negative { index }
            | Self::TooManyDecimals { index, .. }
            | Self::ExceedsMeterDigits { index, .. }
            | Self::BelowLastReading { index, .. } => Field::Value(*index),
        }
    }

    pub fn message(&self) -> String {
        use crate::entities::iso_date::format;
        match self {
            Self::DateInFuture { today } => format!("the reading date lies after today ({})", format(*today)),
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
    let mut violations = Vec::new();
    if reading_date > today {
        violations.push(RuleViolation::DateInFuture { today });
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
        accepted.push(AcceptedValue {
            register: register.code.clone(),
            value: submitted.value,
            consumption,
            rollover,
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
                    })
                    .collect(),
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
        let half = ReadingPolicy { rollover_max_share: Decimal::new(5, 1) };
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
