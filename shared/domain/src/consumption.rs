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
}
