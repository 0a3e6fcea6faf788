//! Meter readings as the customer sees them: the last reading per register, the history,
//! and the consumption overview per calendar month (HT, NT and total), chart-ready.
//!
//! A reading dated `d` is the counter at the end of day `d`. The consumption between two
//! readings of a register (through zero where the counter rolled over) is spread evenly
//! over the days between them, so months without a reading of their own (gaps) get their
//! share, and readings at month ends give exact monthly values.

use crate::entities::{MeterReading, MeterRecord, ReadingSource, iso_date};
use crate::ids::{MeterNumber, RegisterCode};
use crate::meter_reading::{MeterView, meter_view};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use time::{Date, Duration};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    #[serde(with = "iso_date")]
    pub date: Date,
    pub register: RegisterCode,
    pub value: Decimal,
    pub source: ReadingSource,
}

/// `GET /v1/meters/{meterNumber}/readings`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadingsView {
    #[serde(flatten)]
    pub meter: MeterView,
    /// Newest first.
    pub history: Vec<HistoryEntry>,
}

/// The readings of a meter: the mirror's history and the meter's last readings (which
/// include readings the customer submitted), one per register and day.
fn all_readings(meter: &MeterRecord, history: &[MeterReading]) -> BTreeMap<(RegisterCode, Date), HistoryEntry> {
    let mut all = BTreeMap::new();
    for r in history.iter().filter(|r| r.meter_number == meter.meter.meter_number) {
        all.insert(
            (r.register.clone(), r.date),
            HistoryEntry { date: r.date, register: r.register.clone(), value: r.value, source: r.source },
        );
    }
    for l in &meter.last_readings {
        all.insert(
            (l.register.clone(), l.date),
            HistoryEntry { date: l.date, register: l.register.clone(), value: l.value, source: l.source },
        );
    }
    all
}

pub fn readings_view(meter: &MeterRecord, history: &[MeterReading]) -> ReadingsView {
    let mut entries: Vec<HistoryEntry> = all_readings(meter, history).into_values().collect();
    entries.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.register.cmp(&b.register)));
    ReadingsView { meter: meter_view(meter), history: entries }
}

/// One calendar month of the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumptionPeriod {
    #[serde(with = "iso_date")]
    pub period_start: Date,
    #[serde(with = "iso_date")]
    pub period_end: Date,
    /// Consumption per register.
    pub values: BTreeMap<RegisterCode, Decimal>,
    pub total: Decimal,
    /// Whether readings cover the whole month (the first and last month may be partial).
    pub complete: bool,
}

/// `GET /v1/meters/{meterNumber}/consumption`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumptionView {
    pub meter_number: MeterNumber,
    pub unit: String,
    pub registers: Vec<RegisterCode>,
    pub periods: Vec<ConsumptionPeriod>,
}

fn month_start(d: Date) -> Date {
    d.replace_day(1).unwrap_or(d)
}

fn month_end(d: Date) -> Date {
    d.replace_day(d.month().length(d.year())).unwrap_or(d)
}

pub fn consumption_view(meter: &MeterRecord, history: &[MeterReading]) -> ConsumptionView {
    let readings = all_readings(meter, history);
    // Per register: consumption per day range (exclusive start, inclusive end).
    let mut per_month: BTreeMap<Date, BTreeMap<RegisterCode, Decimal>> = BTreeMap::new();
    let mut covered: BTreeMap<Date, i64> = BTreeMap::new();
    let registers: Vec<RegisterCode> = meter.meter.registers.iter().map(|r| r.code.clone()).collect();
    for register in &meter.meter.registers {
        let series: Vec<&HistoryEntry> = readings.values().filter(|e| e.register == register.code).collect();
        let range = Decimal::from(10u64.pow(register.digits));
        for pair in series.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let days = (b.date - a.date).whole_days();
            if days <= 0 {
                continue;
            }
            let used = if b.value >= a.value { b.value - a.value } else { b.value + range - a.value };
            let per_day = used / Decimal::from(days);
            let mut day = a.date + Duration::days(1);
            while day <= b.date {
                let end = month_end(day).min(b.date);
                let n = (end - day).whole_days() + 1;
                let month = month_start(day);
                *per_month.entry(month).or_default().entry(register.code.clone()).or_default() +=
                    per_day * Decimal::from(n);
                if register.code == registers[0] {
                    *covered.entry(month).or_default() += n;
                }
                day = end + Duration::days(1);
            }
        }
    }
    let periods = per_month
        .into_iter()
        .map(|(start, values)| {
            let values: BTreeMap<RegisterCode, Decimal> = values
                .into_iter()
                .map(|(code, v)| {
                    let decimals = meter.meter.registers.iter().find(|r| r.code == code).map_or(0, |r| r.decimals);
                    (code, v.round_dp(decimals).normalize())
                })
                .collect();
            let total = values.values().copied().sum();
            let end = month_end(start);
            let days_in_month = (end - start).whole_days() + 1;
            let complete = covered.get(&start).is_some_and(|n| *n >= days_in_month);
            ConsumptionPeriod { period_start: start, period_end: end, values, total, complete }
        })
        .collect();
    ConsumptionView {
        meter_number: meter.meter.meter_number.clone(),
        unit: meter.meter.unit.clone(),
        registers,
        periods,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::LastReading;
    use crate::export::parse_export;
    use crate::ids::MeterNumber;
    use std::str::FromStr;
    use time::macros::date;

    fn demo(meter: &str) -> (MeterRecord, Vec<MeterReading>) {
        let s = parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        let m = s.meters.iter().find(|m| m.meter.meter_number.as_str() == meter).unwrap().clone();
        let r = s.readings.iter().filter(|r| r.meter_number.as_str() == meter).cloned().collect();
        (m, r)
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn month_end_readings_give_exact_months_per_register_and_in_total() {
        let (meter, history) = demo("1EMH0012345678");
        let view = consumption_view(&meter, &history);
        // 23 complete months between the 24 month-end readings.
        assert_eq!(view.periods.len(), 23);
        assert!(view.periods.iter().all(|p| p.complete));
        let january = &view.periods[0];
        assert_eq!((january.period_start, january.period_end), (date!(2025 - 01 - 01), date!(2025 - 01 - 31)));
        assert_eq!(january.values[&RegisterCode::parse("HT").unwrap()], dec("400"));
        assert_eq!(january.total, january.values.values().copied().sum::<Decimal>());
        let november = view.periods.last().unwrap();
        assert_eq!(november.values[&RegisterCode::parse("NT").unwrap()], dec("268"));
    }

    #[test]
    fn gas_keeps_its_decimals() {
        let (meter, history) = demo("7ELS8135012345");
        let view = consumption_view(&meter, &history);
        assert_eq!(view.periods.last().unwrap().total, dec("130.164"));
    }

    #[test]
    fn a_rollover_counts_through_zero_and_gaps_are_shared_out() {
        let (mut meter, mut history) = demo("1EBZ0012398765");
        // Readings are missing for the last two months; the customer reports 00120 on 31 January.
        history.retain(|r| r.date <= date!(2026 - 09 - 30));
        meter.last_readings = vec![LastReading {
            register: RegisterCode::parse("SINGLE").unwrap(),
            date: date!(2027 - 01 - 31),
            value: dec("120"),
            source: ReadingSource::Customer,
        }];
        let view = consumption_view(&meter, &history);
        // From 99188 on 30 September through 100000 to 120: 932 kWh over 123 days.
        let tail: Decimal =
            view.periods.iter().filter(|p| p.period_start >= date!(2026 - 10 - 01)).map(|p| p.total).sum();
        assert!((tail - dec("932")).abs() <= dec("2"), "{tail}");
        let october = view.periods.iter().find(|p| p.period_start == date!(2026 - 10 - 01)).unwrap();
        assert_eq!(october.total, dec("235"), "31 of 123 days");
        assert!(view.periods.iter().all(|p| p.total >= Decimal::ZERO));
    }

    #[test]
    fn history_is_newest_first_and_includes_the_last_reported_values() {
        let (mut meter, history) = demo("1ESY1160012345");
        meter.last_readings[0] =
            LastReading { date: date!(2026 - 12 - 01), value: dec("53600"), ..meter.last_readings[0].clone() };
        let view = readings_view(&meter, &history);
        assert_eq!(view.history[0].date, date!(2026 - 12 - 01));
        assert_eq!(view.history.len(), 25);
    }

    fn synthetic() -> (MeterRecord, Vec<MeterReading>) {
        let (mut meter, _) = demo("1EMH0012345678");
        meter.meter.registers[0].digits = 5;
        meter.meter.registers[1].digits = 5;
        meter.meter.registers[1].decimals = 2;
        let ht = RegisterCode::parse("HT").unwrap();
        let nt = RegisterCode::parse("NT").unwrap();
        let reading = |meter: &str, register: &RegisterCode, date: Date, value: &str| MeterReading {
            meter_number: MeterNumber::parse(meter).unwrap(),
            register: register.clone(),
            date,
            value: dec(value),
            source: ReadingSource::NetworkOperator,
        };
        let history = vec![
            // Through zero: 100 before the end of the range, 210 after it: 310 in 31 days.
            reading("1EMH0012345678", &ht, date!(2025 - 12 - 31), "99900"),
            reading("1EMH0012345678", &ht, date!(2026 - 01 - 31), "210"),
            // 590 in 59 days.
            reading("1EMH0012345678", &ht, date!(2026 - 03 - 31), "800"),
            // 100 in three days, one of them in January.
            reading("1EMH0012345678", &nt, date!(2026 - 01 - 30), "0"),
            reading("1EMH0012345678", &nt, date!(2026 - 02 - 02), "100"),
            // Another meter's reading is not this meter's.
            reading("1ESY1160012345", &ht, date!(2026 - 02 - 15), "5"),
        ];
        // The last reading the customer reported: 300 in 30 days.
        meter.last_readings = vec![LastReading {
            register: ht,
            date: date!(2026 - 04 - 30),
            value: dec("1100"),
            source: ReadingSource::Customer,
        }];
        (meter, history)
    }

    #[test]
    fn consumption_is_spread_per_day_through_zero_and_rounded_per_register() {
        let (meter, history) = synthetic();
        let view = consumption_view(&meter, &history);
        let ht = RegisterCode::parse("HT").unwrap();
        let nt = RegisterCode::parse("NT").unwrap();
        type Month = (Date, Date, Option<Decimal>, Option<Decimal>, Decimal, bool);
        let months: Vec<Month> = view
            .periods
            .iter()
            .map(|p| {
                (
                    p.period_start,
                    p.period_end,
                    p.values.get(&ht).copied(),
                    p.values.get(&nt).copied(),
                    p.total,
                    p.complete,
                )
            })
            .collect();
        assert_eq!(
            months,
            [
                (
                    date!(2026 - 01 - 01),
                    date!(2026 - 01 - 31),
                    Some(dec("310")),
                    Some(dec("33.33")),
                    dec("343.33"),
                    true
                ),
                (
                    date!(2026 - 02 - 01),
                    date!(2026 - 02 - 28),
                    Some(dec("280")),
                    Some(dec("66.67")),
                    dec("346.67"),
                    true
                ),
                (date!(2026 - 03 - 01), date!(2026 - 03 - 31), Some(dec("310")), None, dec("310"), true),
                (date!(2026 - 04 - 01), date!(2026 - 04 - 30), Some(dec("300")), None, dec("300"), true),
            ]
        );
        assert_eq!(view.registers, [ht, nt]);
        assert_eq!((view.meter_number.as_str(), view.unit.as_str()), ("1EMH0012345678", "kWh"));
    }

    #[test]
    fn a_month_is_complete_only_when_the_first_register_covers_every_day() {
        let (mut meter, mut history) = synthetic();
        // From 1 January: 2 to 31 January are covered, not the 1st.
        history[0].date = date!(2026 - 01 - 01);
        meter.last_readings.clear();
        let view = consumption_view(&meter, &history);
        let january = &view.periods[0];
        assert_eq!(january.period_start, date!(2026 - 01 - 01));
        assert!(!january.complete);
        assert!(view.periods[1].complete, "February is covered by the first register only");
    }

    #[test]
    fn the_history_is_this_meters_newest_first_and_by_register() {
        let (meter, history) = synthetic();
        let view = readings_view(&meter, &history);
        let rows: Vec<(Date, &str, Decimal)> =
            view.history.iter().map(|e| (e.date, e.register.as_str(), e.value)).collect();
        assert_eq!(
            rows,
            [
                (date!(2026 - 04 - 30), "HT", dec("1100")),
                (date!(2026 - 03 - 31), "HT", dec("800")),
                (date!(2026 - 02 - 02), "NT", dec("100")),
                (date!(2026 - 01 - 31), "HT", dec("210")),
                (date!(2026 - 01 - 30), "NT", dec("0")),
                (date!(2025 - 12 - 31), "HT", dec("99900")),
            ]
        );
        assert_eq!(view.meter.meter_number.as_str(), "1EMH0012345678");
        let (meter, mut history) = synthetic();
        history.push(MeterReading { register: RegisterCode::parse("NT").unwrap(), ..history[1].clone() });
        let view = readings_view(&meter, &history);
        let same_day: Vec<&str> =
            view.history.iter().filter(|e| e.date == date!(2026 - 01 - 31)).map(|e| e.register.as_str()).collect();
        assert_eq!(same_day, ["HT", "NT"]);
    }
}
