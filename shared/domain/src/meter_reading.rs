//! Capability 6, anonymous part: a customer identifies himself with customer number and
//! last name, sees his consumption points and meters with their last readings, and
//! submits a reading (Zählerstandsmeldung).

use crate::changes::{self, ChangeError};
use crate::clock::Clock;
use crate::entities::{Address, Commodity, LastReading, MeterRecord, ReadingSource, iso_date};
use crate::identification::{IdentificationError, IdentificationLimits, decide, succeeded, take_attempt};
use crate::identity::sessions::Caller;
use crate::ids::{
    ContractNumber, CustomerNumber, IdempotencyKey, InstallationId, MaloId, MeterNumber, RegisterCode, RequestId,
};
use crate::plausibility::{AcceptedValue, ReadingPolicy, RuleViolation, SubmittedValue, check_reading_confirmed};
use crate::ports::{AttemptLimiter, CustomerDirectory, RequestWriter, StoreError};
use crate::requests::{Activity, ActivityOwner, Channel, CustomerRequest, IdempotencyClaim, MirrorUpdate, RequestKind};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};

pub use crate::identification::Identification;

/// An anonymous reading submission, parsed.
#[derive(Debug, Clone)]
pub struct AnonymousReading {
    pub identification: Identification,
    pub meter: MeterNumber,
    pub reading_date: Date,
    pub values: Vec<SubmittedValue>,
    /// The customer confirms values outside the plausible range (`confirmedImplausible`).
    pub confirmed_implausible: bool,
    /// The client's key and the fingerprint of the request body.
    pub idempotency: Option<(IdempotencyKey, String)>,
}

impl From<IdentificationError> for MeterReadingError {
    fn from(e: IdentificationError) -> Self {
        match e {
            IdentificationError::NotIdentified => Self::NotIdentified,
            IdentificationError::TooManyAttempts { retry_after } => Self::TooManyAttempts { retry_after },
            IdentificationError::Store(e) => Self::Store(e),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MeterReadingError {
    /// Unknown customer number or a name that does not match: one answer for both.
    #[error("customer number and name do not match")]
    NotIdentified,
    #[error("too many attempts")]
    TooManyAttempts { retry_after: time::Duration },
    #[error("no such meter for this customer")]
    MeterNotFound,
    #[error("the reading is not plausible")]
    Implausible(Vec<RuleViolation>),
    #[error("the idempotency key was used for another request")]
    IdempotencyKeyReused,
    /// Another request under the same idempotency key is still being written.
    #[error("a request with this idempotency key is in progress")]
    RequestInProgress,
    /// The meter's readings changed while this reading was checked.
    #[error("the meter changed concurrently")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Configuration of the anonymous capability.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnonymousPolicy {
    /// Identification attempts per customer number, source address and deployment.
    pub limits: IdentificationLimits,
    pub readings: ReadingPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastReadingView {
    #[serde(with = "iso_date")]
    pub date: Date,
    pub value: Decimal,
    pub source: ReadingSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterView {
    pub code: RegisterCode,
    pub obis: String,
    pub digits: u32,
    pub decimals: u32,
    pub last_reading: Option<LastReadingView>,
    /// The values plausible for a reading today (the anonymous lookup only; where the register
    /// has a forecast and a last reading).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plausible_range: Option<crate::plausibility::AllowedRange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterView {
    pub meter_number: MeterNumber,
    pub commodity: Commodity,
    pub unit: String,
    pub registers: Vec<RegisterView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumptionPointView {
    pub contract_number: ContractNumber,
    pub installation_id: InstallationId,
    pub malo_id: MaloId,
    pub address: Address,
    pub meters: Vec<MeterView>,
}

/// The plausible values of a meter's registers on a date (`GET /v1/meters/{m}/reading-range`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadingRangeView {
    pub meter_number: MeterNumber,
    #[serde(with = "iso_date")]
    pub date: Date,
    pub unit: String,
    pub registers: Vec<RegisterView>,
}

/// What the lookup shows before the form is filled.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LookupView {
    pub customer_number: CustomerNumber,
    pub consumption_points: Vec<ConsumptionPointView>,
}

fn last_reading_view(last: &LastReading) -> LastReadingView {
    LastReadingView { date: last.date, value: last.value, source: last.source }
}

/// A meter with its registers and their last readings, as the portal shows it.
pub fn meter_view(m: &MeterRecord) -> MeterView {
    MeterView {
        meter_number: m.meter.meter_number.clone(),
        commodity: m.meter.commodity,
        unit: m.meter.unit.clone(),
        registers: m
            .meter
            .registers
            .iter()
            .map(|r| RegisterView {
                code: r.code.clone(),
                obis: r.obis.clone(),
                digits: r.digits,
                decimals: r.decimals,
                last_reading: m.last_reading(&r.code).map(last_reading_view),
                plausible_range: None,
            })
            .collect(),
    }
}

/// [`meter_view`] with each register's plausible range for a reading on `date`.
pub fn meter_view_for_reading(m: &MeterRecord, date: Date, policy: &ReadingPolicy) -> MeterView {
    let mut view = meter_view(m);
    for (register, shown) in m.meter.registers.iter().zip(view.registers.iter_mut()) {
        shown.plausible_range =
            crate::plausibility::allowed_range(register, m.last_reading(&register.code), date, policy)
                .map(|(_, _, range)| range);
    }
    view
}

const SUBMIT_OPERATION: &str = "anonymous-meter-reading";
const LOGGED_IN_OPERATION: &str = "meter-reading";

/// The idempotency subject of a logged-in reading: the meter of one customer.
fn reading_subject(customer: &CustomerNumber, meter: &MeterNumber) -> String {
    format!("{customer}/{meter}")
}

pub struct MeterReadingService<D, L, W, C> {
    pub directory: D,
    pub limiter: L,
    pub writer: W,
    pub clock: C,
    pub policy: AnonymousPolicy,
}

impl<D: CustomerDirectory, L: AttemptLimiter, W: RequestWriter, C: Clock> MeterReadingService<D, L, W, C> {
    /// Consumption points, meters, registers and last readings of an identified customer;
    /// contracts that have ended are not shown.
    pub async fn lookup(&self, who: &Identification) -> Result<LookupView, MeterReadingError> {
        let (allowed, partner, contracts, meters) = futures::join!(
            take_attempt(&self.limiter, &self.clock, who, &self.policy.limits),
            self.directory.partner(&who.customer),
            self.directory.contracts(&who.customer),
            self.directory.meters(&who.customer),
        );
        let (_, slots) = decide(who, allowed, partner)?;
        succeeded(&self.limiter, slots).await;
        let (contracts, meters) = (contracts?, meters?);
        let today = self.clock.today();
        let consumption_points = contracts
            .iter()
            .map(|c| &c.entity)
            .filter(|c| c.end_date.is_none_or(|end| end >= today))
            .map(|c| ConsumptionPointView {
                contract_number: c.contract_number.clone(),
                installation_id: c.installation_id.clone(),
                malo_id: c.consumption_point.malo_id.clone(),
                address: c.consumption_point.address.clone(),
                meters: meters
                    .iter()
                    .filter(|m| m.meter.installation_id == c.installation_id && m.is_active_on(today))
                    .map(|m| meter_view_for_reading(m, today, &self.policy.readings))
                    .collect(),
            })
            .collect();
        Ok(LookupView { customer_number: who.customer.clone(), consumption_points })
    }

    /// Checks and records a reading; returns the answer for the client (the first answer
    /// again for a retry with the same idempotency key and body).
    pub async fn submit(&self, reading: AnonymousReading) -> Result<Value, MeterReadingError> {
        let who = &reading.identification;
        let claim = changes::claim(SUBMIT_OPERATION, who.customer.as_str(), reading.idempotency.clone());
        let (earlier, allowed, partner, meter) = futures::join!(
            changes::stored(&self.writer, &claim),
            take_attempt(&self.limiter, &self.clock, who, &self.policy.limits),
            self.directory.partner(&who.customer),
            self.directory.meter(&who.customer, &reading.meter),
        );
        // The fingerprint covers the name: an equal body is the same identified caller.
        let earlier = earlier?;
        if let (Some(answer), Some(claim)) = (&earlier, &claim)
            && answer.fingerprint == claim.fingerprint
        {
            return Ok(answer.body.clone());
        }
        let (partner, slots) = decide(who, allowed, partner)?;
        if earlier.is_some() {
            return Err(MeterReadingError::IdempotencyKeyReused);
        }
        let meter = meter?.ok_or(MeterReadingError::MeterNotFound)?;
        // The identification succeeded: its slot goes back while the reading is checked
        // and written.
        let (_, recorded) = futures::join!(
            succeeded(&self.limiter, slots),
            self.record(
                &partner.partner_number,
                meter,
                (reading.reading_date, &reading.values, reading.confirmed_implausible),
                claim,
                Channel::PortalAnonymous
            )
        );
        recorded
    }

    /// The values each register of the caller's meter may plausibly show on `date` (today or
    /// earlier), before a reading is typed: the pre-check of `POST /v1/meters/{m}/readings`.
    pub async fn reading_range(
        &self,
        caller: &Caller,
        meter: &MeterNumber,
        date: Date,
    ) -> Result<ReadingRangeView, MeterReadingError> {
        let today = self.clock.today();
        let found = futures::future::try_join_all(
            caller.partner_numbers.iter().map(|customer| self.directory.meter(customer, meter)),
        )
        .await?;
        let record =
            found.into_iter().flatten().find(|m| m.is_active_on(today)).ok_or(MeterReadingError::MeterNotFound)?;
        if date > today {
            return Err(MeterReadingError::Implausible(vec![RuleViolation::DateInFuture { today }]));
        }
        let view = meter_view_for_reading(&record, date, &self.policy.readings);
        Ok(ReadingRangeView { meter_number: view.meter_number, date, unit: view.unit, registers: view.registers })
    }

    /// A reading of a logged-in customer: the caller's meter, then the same rules and
    /// the same write as an anonymous reading.
    pub async fn submit_as(
        &self,
        caller: &Caller,
        meter: &MeterNumber,
        reading_date: Date,
        values: &[SubmittedValue],
        confirmed_implausible: bool,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, MeterReadingError> {
        // The meter and the answer stored under the key, under each of the caller's customer
        // numbers, all at once (the meter's owner is part of both keys: a meter that changed
        // tenants never replays the former tenant's answer). The meter without its history:
        // the rules need the last readings only.
        let lookups = futures::future::try_join_all(caller.partner_numbers.iter().map(|customer| async {
            let claim = changes::claim(LOGGED_IN_OPERATION, &reading_subject(customer, meter), idempotency.clone());
            let (record, earlier) =
                futures::join!(self.directory.meter(customer, meter), changes::stored(&self.writer, &claim));
            Ok::<_, StoreError>(record?.map(|record| (record, earlier, claim)))
        }));
        let (record, earlier, claim) =
            lookups.await?.into_iter().flatten().next().ok_or(MeterReadingError::MeterNotFound)?;
        if let Some(answer) = changes::replay(earlier?, &claim)? {
            return Ok(answer);
        }
        let customer = record.partner_number.clone();
        self.record(&customer, record, (reading_date, values, confirmed_implausible), claim, Channel::Portal).await
    }

    /// Checks a reading (date, values, confirmation of implausible values) of an identified
    /// customer's meter and writes it.
    async fn record(
        &self,
        customer: &CustomerNumber,
        meter: MeterRecord,
        (reading_date, values, confirmed): (Date, &[SubmittedValue], bool),
        claim: Option<IdempotencyClaim>,
        channel: Channel,
    ) -> Result<Value, MeterReadingError> {
        let today = self.clock.today();
        // After the supply through the meter ended, the former customer may still report a
        // reading dated up to its end (the move-out reading, late); a later date is refused
        // (READING_AFTER_SUPPLY_END): the meter may supply someone else by then.
        let accepted = check_reading_confirmed(&meter, reading_date, values, today, &self.policy.readings, confirmed)
            .map_err(MeterReadingError::Implausible)?;
        let request = reading_request(customer, &meter, reading_date, &accepted, claim, self.clock.now(), channel);
        Ok(changes::commit(&self.writer, request).await?)
    }
}

impl From<ChangeError> for MeterReadingError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            ChangeError::RequestInProgress => Self::RequestInProgress,
            ChangeError::Conflict => Self::Conflict,
            ChangeError::NotFound => Self::MeterNotFound,
            ChangeError::Implausible(v) => Self::Implausible(v),
            ChangeError::Store(e) => Self::Store(e),
            other => Self::Store(StoreError(other.to_string())),
        }
    }
}

/// The write of one reading: record, activities at the customer and the installation,
/// the meter's new last readings, message payload and the client's answer.
pub fn reading_request(
    customer: &CustomerNumber,
    meter: &MeterRecord,
    reading_date: Date,
    accepted: &[AcceptedValue],
    idempotency: Option<IdempotencyClaim>,
    now: OffsetDateTime,
    channel: Channel,
) -> CustomerRequest {
    let request_id = RequestId::new_random();
    let date = iso_date::format(reading_date);
    let registers: Vec<Value> = accepted
        .iter()
        .map(|v| {
            let obis = meter.meter.registers.iter().find(|r| r.code == v.register).map(|r| r.obis.clone());
            json!({
                "register": v.register,
                "obis": obis,
                "value": v.value,
                "consumption": v.consumption,
                "rollover": v.rollover,
                "implausible": v.implausible,
            })
        })
        .collect();
    let record = json!({
        "meterNumber": meter.meter.meter_number,
        "installationId": meter.meter.installation_id,
        "contractNumber": meter.contract_number,
        "readingDate": date,
        "unit": meter.meter.unit,
        "values": registers,
        // Values outside the plausible range, confirmed by the customer: for the CRM to check.
        "implausible": accepted.iter().any(|v| v.implausible),
    });
    let subject = format!("Zählerstandsmeldung {} zum {}", meter.meter.meter_number, date);
    let submitted_at = now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now);
    let answer = json!({
        "requestId": request_id,
        "status": "RECEIVED",
        "submittedAt": crate::entities::timestamp::format(submitted_at),
        "meterNumber": meter.meter.meter_number,
        "readingDate": date,
        "values": accepted,
    });
    let mut last_readings = meter.last_readings.clone();
    for v in accepted {
        last_readings.retain(|l| l.register != v.register);
        last_readings.push(LastReading {
            register: v.register.clone(),
            date: reading_date,
            value: v.value,
            source: ReadingSource::Customer,
        });
    }
    CustomerRequest {
        request_id,
        kind: RequestKind::MeterReadingSubmission,
        customer: Some(customer.clone()),
        channel,
        submitted_at,
        payload: record.clone(),
        record,
        activities: vec![
            Activity {
                owner: ActivityOwner::Customer(customer.clone()),
                activity_type: "METER_READING_SUBMITTED",
                subject: subject.clone(),
                text: None,
                route_to: None,
            },
            Activity {
                owner: ActivityOwner::Installation(meter.meter.installation_id.clone()),
                activity_type: "METER_READING_SUBMITTED",
                subject,
                text: None,
                route_to: None,
            },
        ],
        mirror_updates: vec![MirrorUpdate::MeterLastReadings {
            customer: customer.clone(),
            meter: meter.meter.meter_number.clone(),
            last_readings,
            expected_version: meter.version,
        }],
        idempotency,
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::export::parse_export;
    use crate::ids::IdempotencyKey;
    use crate::memory::{MemoryDirectory, MemoryLimiter, MemoryWriter};
    use crate::requests::WriteError;
    use std::str::FromStr;
    use time::macros::{date, datetime};

    type Service = MeterReadingService<MemoryDirectory, MemoryLimiter, MemoryWriter, FixedClock>;

    fn service() -> Service {
        let snapshot = parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        MeterReadingService {
            directory: MemoryDirectory::new(snapshot),
            limiter: MemoryLimiter::default(),
            writer: MemoryWriter::default(),
            clock: FixedClock(datetime!(2026-12-01 09:00 UTC)),
            policy: AnonymousPolicy::default(),
        }
    }

    fn erika(name: &str) -> Identification {
        Identification {
            customer: CustomerNumber::parse("1000001").unwrap(),
            name: name.into(),
            source: Default::default(),
            bill: None,
        }
    }

    fn reading(ht: &str, nt: &str, key: Option<&str>) -> AnonymousReading {
        AnonymousReading {
            identification: erika("Mustermann"),
            meter: MeterNumber::parse("1EMH0012345678").unwrap(),
            reading_date: date!(2026 - 12 - 01),
            values: [("HT", ht), ("NT", nt)]
                .iter()
                .map(|(c, v)| SubmittedValue {
                    register: RegisterCode::parse(c).unwrap(),
                    value: Decimal::from_str(v).unwrap(),
                })
                .collect(),
            confirmed_implausible: false,
            idempotency: key.map(|k| (IdempotencyKey::parse(k).unwrap(), format!("fp-{ht}-{nt}"))),
        }
    }

    #[test]
    fn lookup_shows_consumption_points_and_last_readings() {
        let view = futures::executor::block_on(service().lookup(&erika("  MUSTERMANN "))).unwrap();
        assert_eq!(view.consumption_points.len(), 1);
        let point = &view.consumption_points[0];
        assert_eq!(point.malo_id.as_str(), "51234567895");
        let registers = &point.meters[0].registers;
        assert_eq!(registers.len(), 2);
        assert!(registers.iter().all(|r| r.last_reading.as_ref().unwrap().date == date!(2026 - 11 - 30)));
    }

    #[test]
    fn meters_of_ended_contracts_are_neither_shown_nor_read() {
        let mut snapshot = parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        snapshot.contracts.iter_mut().for_each(|c| c.entity.end_date = Some(date!(2026 - 11 - 30)));
        snapshot.meters.iter_mut().for_each(|m| m.contract_end_date = Some(date!(2026 - 11 - 30)));
        let mut s = service();
        s.directory = MemoryDirectory::new(snapshot);
        let view = futures::executor::block_on(s.lookup(&erika("Mustermann"))).unwrap();
        assert!(view.consumption_points.is_empty());
        let refused = futures::executor::block_on(s.submit(reading("29800", "19700", None))).unwrap_err();
        let MeterReadingError::Implausible(v) = refused else { panic!("{refused:?}") };
        assert_eq!(v[0].code(), "READING_AFTER_SUPPLY_END");
        assert_eq!(
            v[0].message(),
            "your supply through this meter ended on 2026-11-30; a reading can be dated that day at the latest"
        );
        // The move-out reading, dated on the last day and reported late, is still taken.
        let mut last_day = reading("29800", "19700", None);
        last_day.reading_date = date!(2026 - 11 - 30);
        futures::executor::block_on(s.submit(last_day)).unwrap();
    }

    #[test]
    fn a_removed_meter_takes_its_removal_reading_and_nothing_later() {
        let mut snapshot = parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        let old = snapshot.meters.iter_mut().find(|m| m.meter.meter_number.as_str() == "1EMH0012345678").unwrap();
        old.meter.removed_on = Some(date!(2026 - 11 - 30));
        let mut s = service();
        s.directory = MemoryDirectory::new(snapshot);
        let view = futures::executor::block_on(s.lookup(&erika("Mustermann"))).unwrap();
        assert!(view.consumption_points[0].meters.is_empty(), "the removed meter leaves the lookup");
        let refused = futures::executor::block_on(s.submit(reading("29800", "19700", None))).unwrap_err();
        let MeterReadingError::Implausible(v) = refused else { panic!("{refused:?}") };
        assert_eq!(v.iter().map(RuleViolation::code).collect::<Vec<_>>(), ["READING_AFTER_METER_REMOVAL"]);
        assert_eq!(v[0].field(), crate::plausibility::Field::ReadingDate);
        let mut removal_day = reading("29800", "19700", None);
        removal_day.reading_date = date!(2026 - 11 - 30);
        futures::executor::block_on(s.submit(removal_day)).unwrap();
    }

    #[test]
    fn the_accepted_reading_becomes_the_meters_last_reading_if_the_meter_did_not_change() {
        let s = service();
        futures::executor::block_on(s.submit(reading("29800", "19700", None))).unwrap();
        let committed = s.writer.committed();
        let [MirrorUpdate::MeterLastReadings { last_readings, expected_version, .. }] =
            committed[0].mirror_updates.as_slice()
        else {
            panic!("no meter update")
        };
        assert_eq!(*expected_version, 0);
        let ht = last_readings.iter().find(|l| l.register.as_str() == "HT").unwrap();
        assert_eq!(
            (ht.value, ht.date, ht.source),
            (Decimal::from(29800), date!(2026 - 12 - 01), ReadingSource::Customer)
        );

        s.writer.refuse_next_commit(WriteError::Conflict);
        let conflict = futures::executor::block_on(s.submit(reading("29900", "19700", None))).unwrap_err();
        assert!(matches!(conflict, MeterReadingError::Conflict), "{conflict:?}");
    }

    #[test]
    fn a_key_claimed_concurrently_answers_with_the_winners_answer_or_in_progress() {
        let s = service();
        // The other request is still writing: nothing stored yet.
        s.writer.lose_next_race(None);
        let pending = futures::executor::block_on(s.submit(reading("29800", "19700", Some("k-race")))).unwrap_err();
        assert!(matches!(pending, MeterReadingError::RequestInProgress), "{pending:?}");

        // The other request committed the same body first: its answer is ours.
        let winner = crate::requests::StoredAnswer {
            request_id: RequestId::new_random(),
            fingerprint: "fp-29800-19700".into(),
            body: json!({"requestId": "the winner's"}),
        };
        s.writer.lose_next_race(Some(winner.clone()));
        let answer = futures::executor::block_on(s.submit(reading("29800", "19700", Some("k-race")))).unwrap();
        assert_eq!(answer, winner.body);
        assert!(s.writer.committed().is_empty());
    }

    #[test]
    fn unknown_number_and_wrong_name_get_the_same_answer_and_count() {
        let s = service();
        let wrong = futures::executor::block_on(s.lookup(&erika("Musterfrau"))).unwrap_err();
        let unknown = futures::executor::block_on(s.lookup(&Identification {
            customer: CustomerNumber::parse("9999999").unwrap(),
            name: "Mustermann".into(),
            source: Default::default(),
            bill: None,
        }))
        .unwrap_err();
        assert_eq!(wrong.to_string(), unknown.to_string());
        assert!(matches!(wrong, MeterReadingError::NotIdentified));
        assert_eq!(
            s.limiter.total(),
            6,
            "two failures, each counted for the customer number, the address and the deployment"
        );
    }

    #[test]
    fn attempts_are_limited_per_customer_number() {
        let s = service();
        for _ in 0..10 {
            assert!(matches!(
                futures::executor::block_on(s.lookup(&erika("x"))),
                Err(MeterReadingError::NotIdentified)
            ));
        }
        // Even the right name is refused now, until the window has passed.
        assert!(matches!(
            futures::executor::block_on(s.lookup(&erika("Mustermann"))),
            Err(MeterReadingError::TooManyAttempts { .. })
        ));
        // Another customer number has its own window.
        let other = Identification {
            customer: CustomerNumber::parse("1000002").unwrap(),
            name: "Müller-Lüdenscheidt".into(),
            source: Default::default(),
            bill: None,
        };
        assert!(futures::executor::block_on(s.lookup(&other)).is_ok());
    }

    #[test]
    fn a_submission_writes_record_two_activities_and_one_message() {
        let s = service();
        let answer = futures::executor::block_on(s.submit(reading("29800", "19700", None))).unwrap();
        assert_eq!(answer["status"], "RECEIVED");
        let committed = s.writer.committed();
        assert_eq!(committed.len(), 1);
        let owners: Vec<String> = committed[0].activities.iter().map(|a| a.owner.key()).collect();
        assert_eq!(owners, ["BP#1000001", "INST#A-7000001"]);
        assert_eq!(committed[0].envelope().event_type, "meter-reading.submitted");
    }

    #[test]
    fn a_retry_with_the_same_key_returns_the_first_answer_and_writes_nothing() {
        let s = service();
        let first = futures::executor::block_on(s.submit(reading("29800", "19700", Some("k-1")))).unwrap();
        let again = futures::executor::block_on(s.submit(reading("29800", "19700", Some("k-1")))).unwrap();
        assert_eq!(first, again);
        assert_eq!(s.writer.committed().len(), 1);
        let other = futures::executor::block_on(s.submit(reading("29801", "19700", Some("k-1")))).unwrap_err();
        assert!(matches!(other, MeterReadingError::IdempotencyKeyReused));
    }

    #[test]
    fn an_implausible_reading_writes_nothing() {
        let s = service();
        let err = futures::executor::block_on(s.submit(reading("100", "19700", None))).unwrap_err();
        let MeterReadingError::Implausible(v) = err else { panic!("{err:?}") };
        assert_eq!(v[0].code(), "READING_BELOW_LAST_READING");
        assert!(s.writer.committed().is_empty());
    }

    #[test]
    fn another_customers_meter_is_not_found() {
        let s = service();
        let mut r = reading("29800", "19700", None);
        r.meter = MeterNumber::parse("1ESY1160012345").unwrap();
        assert!(matches!(futures::executor::block_on(s.submit(r)), Err(MeterReadingError::MeterNotFound)));
    }

    #[test]
    fn a_contract_ending_today_is_still_shown_with_the_meters_of_its_installation() {
        let mut snapshot = parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        snapshot.contracts.iter_mut().for_each(|c| c.entity.end_date = Some(date!(2026 - 12 - 01)));
        let mut s = service();
        s.directory = MemoryDirectory::new(snapshot);
        let juergen = Identification {
            customer: CustomerNumber::parse("1000002").unwrap(),
            name: "Müller-Lüdenscheidt".into(),
            source: Default::default(),
            bill: None,
        };
        let view = futures::executor::block_on(s.lookup(&juergen)).unwrap();
        let points: Vec<(&str, Vec<&str>)> = view
            .consumption_points
            .iter()
            .map(|p| (p.contract_number.as_str(), p.meters.iter().map(|m| m.meter_number.as_str()).collect()))
            .collect();
        assert_eq!(points, [("5000002", vec!["1ESY1160012345"]), ("5000003", vec!["7ELS8135012345"])]);
        assert_eq!(view.customer_number.as_str(), "1000002");
        let gas = &view.consumption_points[1];
        assert_eq!((gas.installation_id.as_str(), gas.address.city.as_str()), ("A-7000003", "Dresden"));
        let m = &gas.meters[0];
        assert_eq!((m.commodity, m.unit.as_str()), (Commodity::Gas, "m3"));
        let r = &m.registers[0];
        assert_eq!((r.code.as_str(), r.digits, r.decimals), ("SINGLE", 5, 3));
        let last = r.last_reading.as_ref().unwrap();
        assert_eq!((last.value.to_string(), last.source), ("5532.275".to_owned(), ReadingSource::Customer));
    }

    #[test]
    fn the_record_carries_obis_consumption_and_the_millisecond() {
        let mut s = service();
        s.clock = FixedClock(datetime!(2026-12-01 09:00:00.987_654_321 UTC));
        let answer = futures::executor::block_on(s.submit(reading("29800", "19700", None))).unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.submitted_at, datetime!(2026-12-01 09:00:00.987 UTC));
        assert_eq!(answer["submittedAt"], "2026-12-01T09:00:00.987Z");
        assert_eq!(
            (answer["meterNumber"].as_str(), answer["readingDate"].as_str()),
            (Some("1EMH0012345678"), Some("2026-12-01"))
        );
        assert_eq!(answer["requestId"], json!(r.request_id));
        assert_eq!(r.channel, Channel::PortalAnonymous);
        assert_eq!(r.record["contractNumber"], "5000001");
        assert_eq!(r.record["installationId"], "A-7000001");
        assert_eq!(r.record["unit"], "kWh");
        let values = r.record["values"].as_array().unwrap();
        assert_eq!(values[0]["obis"], "1-0:1.8.1");
        assert_eq!(values[1]["obis"], "1-0:1.8.2");
        assert_eq!(values[0]["rollover"], false);
        assert!(values[0]["consumption"].is_string(), "{values:?}");
        assert_eq!(r.activities[0].subject, "Zählerstandsmeldung 1EMH0012345678 zum 2026-12-01");
        let [MirrorUpdate::MeterLastReadings { last_readings, customer, meter, .. }] = r.mirror_updates.as_slice()
        else {
            panic!()
        };
        assert_eq!((customer.as_str(), meter.as_str()), ("1000001", "1EMH0012345678"));
        let mut registers: Vec<(&str, Decimal)> =
            last_readings.iter().map(|l| (l.register.as_str(), l.value)).collect();
        registers.sort();
        assert_eq!(registers, [("HT", Decimal::from(29800)), ("NT", Decimal::from(19700))]);
    }

    #[test]
    fn a_logged_in_customer_reports_for_any_of_his_meters() {
        let s = service();
        let caller = crate::testkit::caller(&["1000001", "1000002"]);
        let meter = MeterNumber::parse("1ESY1160012345").unwrap();
        let values = [SubmittedValue { register: RegisterCode::parse("SINGLE").unwrap(), value: Decimal::from(53600) }];
        let key = crate::testkit::key("k", "fp");
        let first = futures::executor::block_on(s.submit_as(
            &caller,
            &meter,
            date!(2026 - 12 - 01),
            &values,
            false,
            key.clone(),
        ))
        .unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!((r.customer.as_ref().unwrap().as_str(), r.channel), ("1000002", Channel::Portal));
        assert_eq!(r.idempotency.as_ref().unwrap().scope.as_str(), "meter-reading#1000002/1ESY1160012345#k");
        let again =
            futures::executor::block_on(s.submit_as(&caller, &meter, date!(2026 - 12 - 01), &values, false, key))
                .unwrap();
        assert_eq!(first, again);
        assert_eq!(s.writer.committed().len(), 1);
        let other = crate::testkit::caller(&["1000001"]);
        let r = futures::executor::block_on(s.submit_as(&other, &meter, date!(2026 - 12 - 01), &values, false, None));
        assert!(matches!(r, Err(MeterReadingError::MeterNotFound)), "{r:?}");
        let low = [SubmittedValue { register: RegisterCode::parse("SINGLE").unwrap(), value: Decimal::from(1) }];
        let r = futures::executor::block_on(s.submit_as(&caller, &meter, date!(2026 - 12 - 01), &low, false, None));
        assert!(matches!(r, Err(MeterReadingError::Implausible(_))), "{r:?}");
    }

    /// A meter that changed tenants: the new tenant's reading under the same key and body is
    /// a reading of its own, never the former tenant's answer replayed.
    #[test]
    fn the_idempotency_scope_of_a_logged_in_reading_is_customer_and_meter() {
        let mut snapshot = parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        let mut moved =
            snapshot.meters.iter().find(|m| m.meter.meter_number.as_str() == "1EMH0012345678").unwrap().clone();
        moved.partner_number = CustomerNumber::parse("1000002").unwrap();
        snapshot.meters.push(moved);
        let mut s = service();
        s.directory = MemoryDirectory::new(snapshot);
        let meter = MeterNumber::parse("1EMH0012345678").unwrap();
        let values: Vec<SubmittedValue> = [("HT", 29810), ("NT", 19650)]
            .iter()
            .map(|(c, v)| SubmittedValue { register: RegisterCode::parse(c).unwrap(), value: Decimal::from(*v) })
            .collect();
        let key = crate::testkit::key("same-key", "same-body");
        let former = crate::testkit::caller(&["1000001"]);
        let first =
            crate::testkit::run(s.submit_as(&former, &meter, date!(2026 - 12 - 01), &values, false, key.clone()))
                .unwrap();
        let new_tenant = crate::testkit::caller(&["1000002"]);
        let second =
            crate::testkit::run(s.submit_as(&new_tenant, &meter, date!(2026 - 12 - 01), &values, false, key.clone()))
                .unwrap();
        assert_ne!(first["requestId"], second["requestId"], "not the former tenant's answer: {second}");
        let committed = s.writer.committed();
        assert_eq!(committed.len(), 2);
        assert_eq!(committed[1].customer.as_ref().unwrap().as_str(), "1000002");
        // Each one's own retry still replays its own answer.
        assert_eq!(
            crate::testkit::run(s.submit_as(&former, &meter, date!(2026 - 12 - 01), &values, false, key)).unwrap(),
            first
        );
        assert_eq!(s.writer.committed().len(), 2);
    }

    #[test]
    fn change_and_identification_errors_keep_their_meaning() {
        let cases: Vec<(ChangeError, &str)> = vec![
            (ChangeError::IdempotencyKeyReused, "IdempotencyKeyReused"),
            (ChangeError::RequestInProgress, "RequestInProgress"),
            (ChangeError::Conflict, "Conflict"),
            (ChangeError::NotFound, "MeterNotFound"),
            (ChangeError::Implausible(Vec::new()), "Implausible([])"),
            (ChangeError::Store(StoreError("down".into())), "Store(StoreError(\"down\"))"),
            (
                ChangeError::ReauthenticationRequired,
                "Store(StoreError(\"confirm the change with the current password\"))",
            ),
        ];
        for (e, expected) in cases {
            assert_eq!(format!("{:?}", MeterReadingError::from(e)), expected);
        }
        let ids: Vec<String> = [
            IdentificationError::NotIdentified,
            IdentificationError::TooManyAttempts { retry_after: time::Duration::seconds(7) },
            IdentificationError::Store(StoreError("down".into())),
        ]
        .into_iter()
        .map(|e| format!("{:?}", MeterReadingError::from(e)))
        .collect();
        assert_eq!(
            ids,
            [
                "NotIdentified",
                "TooManyAttempts { retry_after: Duration { seconds: 7, nanoseconds: 0 } }",
                "Store(StoreError(\"down\"))"
            ]
        );
    }
}
