//! Contract termination (Kündigung, capability 13): reason from the code list, a date the
//! reason's notice rule allows, the final bill's address, the final reading of every meter
//! of the contract (same plausibility as every reading) and how the final bill is paid
//! (keep the bank details, or give new ones under the bank-details rules). Sensitive like
//! a bank-details change.
//!
//! The notice rules come from the CRM: each termination reason of the code list carries
//! its `terminationRule` (earliest date in days from today, whether a move-out date is
//! needed); a reason without one is an ordinary termination with the configured notice.

use crate::bank::{AccountInput, checked_account};
use crate::billing::checked_address;
use crate::changes::{self, ChangeError, Confirmation, Draft};
use crate::clock::Clock;
use crate::entities::{
    Address, CodeValue, Contract, MeterRecord, PaymentMethod, PendingTermination, TerminationRule, iso_date,
};
use crate::identity::sessions::Caller;
use crate::identity::{LoginStore, LoginThrottle, Mailer};
use crate::ids::{ContractNumber, IdempotencyKey, MeterNumber, RequestId};
use crate::plausibility::{ReadingPolicy, SubmittedValue, check_reading_confirmed};
use crate::ports::RequestWriter;
use crate::reads::{Catalog, ScopedReads};
use crate::requests::{Activity, ActivityOwner, MirrorObject, MirrorUpdate, RequestKind};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use time::{Date, Duration};

/// Where the final bill goes.
#[derive(Debug, Clone)]
pub enum FinalBillAddress {
    Current,
    Other { name: Option<String>, address: Address },
}

/// How the final bill is paid.
#[derive(Debug, Clone)]
pub enum FinalBillPayment {
    Keep,
    New { payment_method: PaymentMethod, bank_account: Option<AccountInput> },
}

#[derive(Debug, Clone)]
pub struct FinalReading {
    pub meter: MeterNumber,
    pub reading_date: Date,
    pub values: Vec<SubmittedValue>,
    /// The customer insists on values outside the plausible range.
    pub confirmed_implausible: bool,
}

#[derive(Debug, Clone)]
pub struct Termination {
    pub reason: String,
    pub termination_date: Date,
    pub move_out_date: Option<Date>,
    pub final_bill_address: FinalBillAddress,
    /// The final reading of every meter of the contract.
    pub readings: Vec<FinalReading>,
    pub payment: FinalBillPayment,
}

/// The limits the CRM's rules do not set (configuration).
#[derive(Debug, Clone, Copy)]
pub struct TerminationPolicy {
    /// Notice for a reason whose code list entry carries no rule.
    pub notice_days: i64,
    pub max_days_ahead: i64,
    pub readings: ReadingPolicy,
}

impl Default for TerminationPolicy {
    fn default() -> Self {
        Self { notice_days: 30, max_days_ahead: 366, readings: ReadingPolicy::default() }
    }
}

impl TerminationPolicy {
    /// The reason's rule from the CRM, or an ordinary termination with notice.
    pub fn rule(&self, reason: &CodeValue) -> TerminationRule {
        reason
            .termination_rule
            .unwrap_or(TerminationRule { earliest_days_from_today: self.notice_days, move_out_date_required: false })
    }

    /// The earliest and latest termination date a rule allows for a contract: not before
    /// the contract starts, and (for a contract that ends anyway) before its end.
    pub fn window(&self, rule: TerminationRule, contract: &Contract, today: Date) -> (Date, Date) {
        let earliest = (today + Duration::days(rule.earliest_days_from_today)).max(contract.start_date);
        let latest = today + Duration::days(self.max_days_ahead);
        let latest = contract.end_date.map_or(latest, |end| latest.min(end - Duration::days(1)));
        (earliest, latest)
    }
}

/// The date rules, without storage.
pub fn check_dates(
    policy: &TerminationPolicy,
    rule: TerminationRule,
    t: &Termination,
    contract_start: Date,
    today: Date,
) -> Result<(), ChangeError> {
    if rule.move_out_date_required {
        let Some(moved) = t.move_out_date else {
            return Err(ChangeError::invalid("/moveOutDate", "MOVE_OUT_DATE_REQUIRED", "give the date you move out"));
        };
        if moved != t.termination_date {
            return Err(ChangeError::invalid(
                "/terminationDate",
                "TERMINATION_DATE_NOT_MOVE_OUT_DATE",
                "after a move the contract ends on the move-out date",
            ));
        }
    }
    let earliest = (today + Duration::days(rule.earliest_days_from_today)).max(contract_start);
    if t.termination_date < earliest {
        return Err(ChangeError::invalid(
            "/terminationDate",
            "TERMINATION_DATE_TOO_EARLY",
            format!("for this reason the earliest termination date is {}", iso_date::format(earliest)),
        ));
    }
    if t.termination_date > today + Duration::days(policy.max_days_ahead) {
        return Err(ChangeError::invalid(
            "/terminationDate",
            "TERMINATION_DATE_TOO_LATE",
            format!("terminate at most {} days ahead", policy.max_days_ahead),
        ));
    }
    Ok(())
}

/// The meters a termination needs a final reading of: the contract's meters still in use.
fn meters_to_read(meters: Vec<MeterRecord>, contract: &Contract, today: Date) -> Vec<MeterRecord> {
    let mut meters: Vec<MeterRecord> = meters
        .into_iter()
        .filter(|m| m.meter.installation_id == contract.installation_id && m.is_active_on(today))
        .collect();
    meters.sort_by(|a, b| a.meter.meter_number.cmp(&b.meter.meter_number));
    meters
}

/// Every meter's final reading, each once and under the reading rules.
pub fn check_final_readings(
    meters: &[MeterRecord],
    readings: &[FinalReading],
    today: Date,
    policy: &ReadingPolicy,
) -> Result<Vec<Value>, ChangeError> {
    let mut accepted = Vec::with_capacity(readings.len());
    for (index, r) in readings.iter().enumerate() {
        let pointer = format!("/readings/{index}/meterNumber");
        let Some(meter) = meters.iter().find(|m| m.meter.meter_number == r.meter) else {
            return Err(ChangeError::invalid(
                &pointer,
                "METER_NOT_OF_CONTRACT",
                "the meter does not belong to this contract",
            ));
        };
        if readings[..index].iter().any(|earlier| earlier.meter == r.meter) {
            return Err(ChangeError::invalid(&pointer, "FINAL_READING_TWICE", "give each meter's final reading once"));
        }
        let values = check_reading_confirmed(meter, r.reading_date, &r.values, today, policy, r.confirmed_implausible)
            .map_err(|violations| ChangeError::ImplausibleAt { prefix: format!("/readings/{index}"), violations })?;
        let implausible = values.iter().any(|v| v.implausible);
        let mut reading = json!({
            "meterNumber": r.meter,
            "readingDate": iso_date::format(r.reading_date),
            "values": values,
        });
        if implausible {
            reading["implausible"] = Value::Bool(true);
        }
        accepted.push(reading);
    }
    if let Some(missing) = meters.iter().find(|m| !readings.iter().any(|r| r.meter == m.meter.meter_number)) {
        let registers: Vec<&str> = missing.meter.registers.iter().map(|r| r.code.as_str()).collect();
        return Err(ChangeError::invalid(
            "/readings",
            "FINAL_READING_REQUIRED",
            format!("give the final reading of meter {} ({})", missing.meter.meter_number, registers.join(", ")),
        ));
    }
    Ok(accepted)
}

/// Why a contract cannot be terminated now, if it cannot: the refusal's code and message.
fn blocked(contract: &Contract, until: Date) -> Option<(&'static str, String)> {
    // A contract that ends anyway can still be ended earlier (a move before a fixed end).
    if let Some(end) = contract.end_date.filter(|end| *end <= until) {
        return Some(("CONTRACT_ENDED", format!("the contract ends on {} already", iso_date::format(end))));
    }
    contract.pending_termination.as_ref().map(|pending| {
        ("TERMINATION_PENDING", format!("a termination ({}) is already being processed", pending.request_id))
    })
}

pub struct TerminationService<R, W, G, H, M, C> {
    pub reads: R,
    pub writer: W,
    pub confirmation: Confirmation<G, H, C>,
    pub mailer: M,
    pub clock: C,
    pub policy: TerminationPolicy,
}

impl<R, W, G, H, M, C> TerminationService<R, W, G, H, M, C>
where
    R: ScopedReads + Catalog,
    W: RequestWriter,
    G: LoginStore,
    H: LoginThrottle,
    M: Mailer,
    C: Clock,
{
    pub async fn terminate(
        &self,
        caller: &Caller,
        contract_number: &ContractNumber,
        t: Termination,
        password: Option<&SecretString>,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ChangeError> {
        let claim = changes::claim("contract-termination", contract_number.as_str(), idempotency);
        let (earlier, contract) =
            futures::join!(changes::stored(&self.writer, &claim), self.reads.contract(caller, contract_number));
        let contract = contract?.ok_or(ChangeError::NotFound)?;
        if let Some(answer) = changes::replay(earlier?, &claim)? {
            return Ok(answer);
        }
        self.confirmation.confirm(caller, password).await?;

        let today = self.clock.today();
        if let Some((code, message)) = blocked(&contract, t.termination_date.max(today)) {
            return Err(ChangeError::not_possible(code, message));
        }
        let (reasons, account, bank, meters) = futures::join!(
            self.reads.code_list("terminationReasons"),
            self.reads.account(caller, &contract.account_number),
            self.reads.bank_details(caller, &contract.account_number),
            self.reads.meters(caller),
        );
        let reason = reasons?.into_iter().find(|r| r.key == t.reason).ok_or_else(|| {
            ChangeError::invalid("/reason", "UNKNOWN_REASON", "not a termination reason of the code list")
        })?;
        check_dates(&self.policy, self.policy.rule(&reason), &t, contract.start_date, today)?;
        let account = account?.ok_or(ChangeError::NotFound)?;

        let (bill_name, bill_address) = match &t.final_bill_address {
            FinalBillAddress::Current => (
                account.bill_recipient.as_ref().map(|r| r.name.clone()),
                account.bill_recipient.as_ref().map_or(account.billing_address.clone(), |r| r.address.clone()),
            ),
            FinalBillAddress::Other { name, address } => {
                (name.clone(), checked_address(address, "/finalBillAddress/address")?)
            }
        };

        let meters = meters_to_read(meters?, &contract, today);
        let readings = check_final_readings(&meters, &t.readings, today, &self.policy.readings)?;

        let payment = match &t.payment {
            FinalBillPayment::Keep => {
                let bank = bank?;
                json!({
                    "type": "KEEP",
                    "paymentMethod": bank.as_ref().map_or(PaymentMethod::BankTransfer, |b| b.payment_method),
                    "bankAccount": Value::Null,
                })
            }
            FinalBillPayment::New { payment_method, bank_account } => {
                let account =
                    bank_account.as_ref().map(|a| checked_account(a, "/finalBillPayment/bankAccount")).transpose()?;
                if *payment_method == PaymentMethod::SepaDirectDebit && account.is_none() {
                    return Err(ChangeError::invalid(
                        "/finalBillPayment/bankAccount",
                        "BANK_ACCOUNT_REQUIRED",
                        "direct debit needs the account to debit",
                    ));
                }
                json!({
                    "type": "NEW",
                    "paymentMethod": payment_method,
                    "bankAccount": account.map(|a| json!({ "holder": a.holder, "iban": a.iban, "bic": a.bic })),
                })
            }
        };

        let request_id = RequestId::new_random();
        let date = iso_date::format(t.termination_date);
        let pending = PendingTermination { request_id, reason: t.reason.clone(), termination_date: t.termination_date };
        let subject = format!("Kündigung Vertrag {contract_number} zum {date} ({})", t.reason);
        let mut request = Draft {
            request_id,
            kind: RequestKind::ContractTermination,
            customer: account.partner_number.clone(),
            now: self.clock.now(),
            activity_type: "CONTRACT_TERMINATION_REQUESTED",
            subject: subject.clone(),
            details: json!({
                "contractNumber": contract_number,
                "accountNumber": contract.account_number,
                "installationId": contract.installation_id,
                "reason": t.reason,
                "terminationDate": date,
                "moveOutDate": t.move_out_date.map(iso_date::format),
                "finalBillAddress": {
                    "type": if matches!(t.final_bill_address, FinalBillAddress::Current) { "CURRENT" } else { "OTHER" },
                    "name": bill_name,
                    "address": bill_address,
                },
                "readings": readings,
                "finalBillPayment": payment,
            }),
            mirror_updates: vec![MirrorUpdate::Pending {
                object: MirrorObject::Contract(account.partner_number.clone(), contract_number.clone()),
                set: Map::from_iter([("pendingTermination".to_owned(), json!(pending))]),
                // A termination submitted at the same time loses.
                expect: Map::from_iter([("pendingTermination".to_owned(), Value::Null)]),
                previous: Map::new(),
            }],
            claim,
            answer: Map::from_iter([
                ("contractNumber".to_owned(), json!(contract_number)),
                ("accountNumber".to_owned(), json!(contract.account_number)),
            ]),
        }
        .request();
        request.activities.push(Activity {
            owner: ActivityOwner::Installation(contract.installation_id.clone()),
            activity_type: "CONTRACT_TERMINATION_REQUESTED",
            subject,
            text: None,
            route_to: None,
        });
        let answer = changes::commit(&self.writer, request).await?;
        let customer_email =
            self.reads.partner(caller, &account.partner_number).await.ok().flatten().and_then(|p| p.email);
        let to = self.confirmation.notice_addresses(caller, customer_email).await;
        let text = format!(
            "Guten Tag,\n\nIhre Kündigung des Vertrags {contract_number} zum {date} ist bei uns eingegangen. \
             Sie erhalten eine Bestätigung, sobald wir sie bearbeitet haben.\n\n\
             Wenn Sie nicht selbst gekündigt haben, rufen Sie uns bitte sofort an.\n"
        );
        changes::notify(&self.mailer, &to, "Ihre Kündigung ist eingegangen", text).await;
        Ok(answer)
    }

    /// What a termination of the contract needs, before the customer fills it in: per
    /// reason of the code list the window of possible dates and whether a move-out date is
    /// needed, and the meters whose final reading it takes. A contract that cannot be
    /// terminated now says why (`blocked`) and offers no reason.
    pub async fn options(&self, caller: &Caller, contract_number: &ContractNumber) -> Result<Value, ChangeError> {
        let (contract, reasons, meters) = futures::join!(
            self.reads.contract(caller, contract_number),
            self.reads.code_list("terminationReasons"),
            self.reads.meters(caller),
        );
        let contract = contract?.ok_or(ChangeError::NotFound)?;
        let today = self.clock.today();
        let blocked = blocked(&contract, today).map(|(code, message)| json!({ "code": code, "detail": message }));
        let reasons: Vec<Value> = if blocked.is_some() {
            Vec::new()
        } else {
            reasons?
                .iter()
                .filter_map(|reason| {
                    let rule = self.policy.rule(reason);
                    let (earliest, latest) = self.policy.window(rule, &contract, today);
                    (earliest <= latest).then(|| {
                        json!({
                            "reason": reason.key,
                            "label": reason.label,
                            "earliestDate": iso_date::format(earliest),
                            "latestDate": iso_date::format(latest),
                            "moveOutDateRequired": rule.move_out_date_required,
                        })
                    })
                })
                .collect()
        };
        let final_readings: Vec<Value> = meters_to_read(meters?, &contract, today)
            .iter()
            .map(|m| {
                json!({
                    "meterNumber": m.meter.meter_number,
                    "registers": m.meter.registers.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(),
                    "lastReadings": m.last_readings.iter().map(|l| json!({
                        "register": l.register,
                        "date": iso_date::format(l.date),
                        "value": l.value,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({
            "contractNumber": contract_number,
            "blocked": blocked,
            "reasons": reasons,
            "finalReadings": final_readings,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::export::MirrorSnapshot;
    use crate::ids::RegisterCode;
    use crate::memory::{MemoryDirectory, MemoryLogins, MemoryMailer, MemoryThrottle, MemoryWriter};
    use crate::testkit::{NOW, caller, caller_at, confirmation, customer, demo, key, password, run};
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use time::macros::date;

    fn termination(reason: &str, date: Date, move_out: Option<Date>) -> Termination {
        Termination {
            reason: reason.into(),
            termination_date: date,
            move_out_date: move_out,
            final_bill_address: FinalBillAddress::Current,
            readings: vec![reading("1EMH0012345678", 29800, 19700)],
            payment: FinalBillPayment::Keep,
        }
    }

    /// The rule of a reason as the demo CRM keeps it (the configured notice for others).
    fn rule(reason: &str) -> TerminationRule {
        let reasons = demo().code_values;
        let policy = TerminationPolicy::default();
        reasons
            .iter()
            .find(|c| c.list_name == "terminationReasons" && c.key == reason)
            .map_or(policy.rule(&CodeValue { termination_rule: None, ..reasons[0].clone() }), |c| policy.rule(c))
    }

    const TODAY: Date = date!(2026 - 12 - 01);

    fn code_of(r: Result<(), ChangeError>) -> &'static str {
        match r {
            Ok(()) => "OK",
            Err(ChangeError::Invalid { code, .. }) => code,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn dates(reason: &str, date: Date, move_out: Option<Date>) -> &'static str {
        code_of(check_dates(
            &TerminationPolicy::default(),
            rule(reason),
            &termination(reason, date, move_out),
            date!(2021 - 03 - 01),
            TODAY,
        ))
    }

    #[test]
    fn each_reason_has_its_dates() {
        let moved = date!(2026 - 11 - 20);
        assert_eq!(dates("MOVE_OUT", moved, Some(moved)), "OK", "a move reported late");
        assert_eq!(dates("MOVE_OUT", moved, None), "MOVE_OUT_DATE_REQUIRED");
        assert_eq!(dates("MOVE_OUT", moved, Some(date!(2026 - 11 - 21))), "TERMINATION_DATE_NOT_MOVE_OUT_DATE");
        let long_ago = date!(2026 - 10 - 01);
        assert_eq!(dates("MOVE_OUT", long_ago, Some(long_ago)), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(dates("SUPPLIER_CHANGE", date!(2026 - 12 - 15), None), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(dates("SUPPLIER_CHANGE", date!(2026 - 12 - 31), None), "OK");
        assert_eq!(dates("PRICE_CHANGE", TODAY, None), "OK");
        assert_eq!(dates("DEATH", date!(2026 - 09 - 15), None), "OK");
        assert_eq!(dates("OTHER", date!(2028 - 01 - 01), None), "TERMINATION_DATE_TOO_LATE");
        // Only a move needs the move-out date.
        assert_eq!(dates("SUPPLIER_CHANGE", date!(2026 - 12 - 31), Some(date!(2026 - 12 - 20))), "OK");
    }

    #[test]
    fn every_limit_is_inclusive() {
        let d = |days: i64| TODAY + Duration::days(days);
        assert_eq!(dates("MOVE_OUT", d(-42), Some(d(-42))), "OK");
        assert_eq!(dates("MOVE_OUT", d(-43), Some(d(-43))), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(dates("DEATH", d(-90), None), "OK");
        assert_eq!(dates("DEATH", d(-91), None), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(dates("PRICE_CHANGE", d(0), None), "OK");
        assert_eq!(dates("PRICE_CHANGE", d(-1), None), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(dates("SUPPLIER_CHANGE", d(30), None), "OK");
        assert_eq!(dates("SUPPLIER_CHANGE", d(29), None), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(dates("OTHER", d(29), None), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(dates("OTHER", d(366), None), "OK");
        assert_eq!(dates("OTHER", d(367), None), "TERMINATION_DATE_TOO_LATE");
        assert_eq!(dates("PRICE_CHANGE", d(367), None), "TERMINATION_DATE_TOO_LATE");
    }

    #[test]
    fn a_contract_cannot_end_before_it_starts_and_the_answer_names_the_earliest_date() {
        let p = TerminationPolicy::default();
        let start = TODAY + Duration::days(5);
        let check =
            |date: Date| check_dates(&p, rule("PRICE_CHANGE"), &termination("PRICE_CHANGE", date, None), start, TODAY);
        assert_eq!(code_of(check(start)), "OK");
        let Err(ChangeError::Invalid { code, pointer, message }) = check(start - Duration::days(1)) else { panic!() };
        assert_eq!((code, pointer.as_str()), ("TERMINATION_DATE_TOO_EARLY", "/terminationDate"));
        assert_eq!(message, "for this reason the earliest termination date is 2026-12-06");
        let Err(ChangeError::Invalid { message, .. }) = check(TODAY + Duration::days(400)) else { panic!() };
        assert_eq!(message, "terminate at most 366 days ahead");
    }

    #[test]
    fn the_notice_rules_come_from_the_crms_code_list() {
        let p = TerminationPolicy::default();
        let mut c = demo().contracts[0].entity.clone();
        let window = |reason: &str, c: &Contract| {
            let (a, b) = p.window(rule(reason), c, TODAY);
            (iso_date::format(a), iso_date::format(b))
        };
        assert_eq!(window("MOVE_OUT", &c), ("2026-10-20".into(), "2027-12-02".into()));
        assert_eq!(window("DEATH", &c).0, "2026-09-02");
        assert_eq!(window("PRICE_CHANGE", &c).0, "2026-12-01");
        assert_eq!(window("SUPPLIER_CHANGE", &c).0, "2026-12-31");
        // A reason without a rule of its own: the configured notice.
        assert_eq!(window("ANYTHING", &c).0, "2026-12-31");
        // Not before the contract starts, and before its end.
        c.start_date = date!(2026 - 11 - 01);
        c.end_date = Some(date!(2027 - 02 - 01));
        assert_eq!(window("MOVE_OUT", &c), ("2026-11-01".into(), "2027-01-31".into()));
        // Another CRM's rule is followed as it is.
        let mut strict = demo().code_values.into_iter().find(|v| v.key == "MOVE_OUT").unwrap();
        strict.termination_rule = Some(TerminationRule { earliest_days_from_today: 14, move_out_date_required: true });
        let t = termination("MOVE_OUT", TODAY + Duration::days(13), Some(TODAY + Duration::days(13)));
        let start = date!(2021 - 03 - 01);
        assert_eq!(code_of(check_dates(&p, p.rule(&strict), &t, start, TODAY)), "TERMINATION_DATE_TOO_EARLY");
        let t = termination("MOVE_OUT", TODAY + Duration::days(14), None);
        assert_eq!(code_of(check_dates(&p, p.rule(&strict), &t, start, TODAY)), "MOVE_OUT_DATE_REQUIRED");
    }

    proptest! {
        #[test]
        fn a_date_is_accepted_exactly_between_the_reasons_earliest_date_and_the_limit(
            reason in prop::sample::select(vec!["MOVE_OUT", "DEATH", "PRICE_CHANGE", "SUPPLIER_CHANGE", "OTHER"]),
            offset in -150i64..450,
            start_offset in -3000i64..60,
        ) {
            let date = TODAY + Duration::days(offset);
            let start = TODAY + Duration::days(start_offset);
            let earliest = match reason {
                "MOVE_OUT" => -42,
                "DEATH" => -90,
                "PRICE_CHANGE" => 0,
                _ => 30,
            }.max(start_offset);
            let expected = if offset < earliest {
                "TERMINATION_DATE_TOO_EARLY"
            } else if offset > 366 {
                "TERMINATION_DATE_TOO_LATE"
            } else {
                "OK"
            };
            let t = termination(reason, date, Some(date));
            prop_assert_eq!(code_of(check_dates(&TerminationPolicy::default(), rule(reason), &t, start, TODAY)), expected);
        }
    }

    type Service =
        TerminationService<MemoryDirectory, MemoryWriter, MemoryLogins, MemoryThrottle, MemoryMailer, FixedClock>;

    fn service_with(snapshot: MirrorSnapshot, customers: &[&str]) -> Service {
        TerminationService {
            reads: MemoryDirectory::new(snapshot),
            writer: MemoryWriter::default(),
            confirmation: confirmation(customers),
            mailer: MemoryMailer::default(),
            clock: FixedClock(NOW),
            policy: TerminationPolicy::default(),
        }
    }

    fn contract(n: &str) -> ContractNumber {
        ContractNumber::parse(n).unwrap()
    }

    fn supplier_change() -> Termination {
        termination("SUPPLIER_CHANGE", date!(2026 - 12 - 31), None)
    }

    fn code(r: Result<Value, ChangeError>) -> (&'static str, String) {
        match r {
            Err(ChangeError::Invalid { code, pointer, .. }) => (code, pointer),
            Err(ChangeError::NotPossible { code, message }) => (code, message),
            other => panic!("{other:?}"),
        }
    }

    fn erika(t: Termination) -> (Service, Result<Value, ChangeError>) {
        let s = service_with(demo(), &["1000001"]);
        let r = run(s.terminate(&caller(&["1000001"]), &contract("5000001"), t, Some(&password()), None));
        (s, r)
    }

    fn address(postal_code: &str) -> crate::entities::Address {
        crate::entities::Address {
            street: " Rheinufer ".into(),
            house_number: "2".into(),
            postal_code: postal_code.into(),
            city: "Bonn".into(),
            country: "de".into(),
        }
    }

    #[test]
    fn a_termination_is_recorded_at_customer_and_installation_and_announced() {
        let (s, answer) = erika(supplier_change());
        let answer = answer.unwrap();
        let committed = s.writer.committed();
        let r = &committed[0];
        assert_eq!(answer["requestId"], json!(r.request_id));
        assert_eq!(
            (answer["contractNumber"].as_str(), answer["accountNumber"].as_str()),
            (Some("5000001"), Some("800000001"))
        );
        assert_eq!(r.kind, RequestKind::ContractTermination);
        assert_eq!(r.customer, Some(customer("1000001")));
        let owners: Vec<String> = r.activities.iter().map(|a| a.owner.key()).collect();
        assert_eq!(owners, ["BP#1000001", "INST#A-7000001"]);
        assert_eq!(r.activities[1].subject, "Kündigung Vertrag 5000001 zum 2026-12-31 (SUPPLIER_CHANGE)");
        assert_eq!(r.record["reason"], "SUPPLIER_CHANGE");
        assert_eq!(r.record["terminationDate"], "2026-12-31");
        assert_eq!(r.record["installationId"], "A-7000001");
        assert_eq!(r.record["moveOutDate"], Value::Null);
        assert_eq!(r.record["reading"], Value::Null);
        assert_eq!(r.record["finalBillAddress"]["type"], "CURRENT");
        assert_eq!(r.record["finalBillAddress"]["name"], Value::Null);
        assert_eq!(r.record["finalBillAddress"]["address"]["street"], "Heidestraße");
        assert_eq!(
            r.record["finalBillPayment"],
            json!({"type": "KEEP", "paymentMethod": "SEPA_DIRECT_DEBIT", "bankAccount": null})
        );
        let [MirrorUpdate::Pending { object, set, expect, .. }] = r.mirror_updates.as_slice() else { panic!() };
        assert_eq!(*object, MirrorObject::Contract(customer("1000001"), contract("5000001")));
        assert_eq!(set["pendingTermination"]["requestId"], json!(r.request_id));
        assert_eq!(set["pendingTermination"]["terminationDate"], "2026-12-31");
        assert_eq!(expect["pendingTermination"], Value::Null);
        let subject = "Ihre Kündigung ist eingegangen".to_owned();
        assert_eq!(
            s.mailer.sent(),
            [("login@example.org".to_owned(), subject.clone()), ("erika.mustermann@example.org".to_owned(), subject)]
        );
        assert!(s.mailer.texts()[0].contains("Vertrags 5000001 zum 2026-12-31"));
    }

    #[test]
    fn the_final_bill_goes_to_the_bill_recipient_or_another_address() {
        let s = service_with(demo(), &["1000002"]);
        let c = caller(&["1000002"]);
        let gas = Termination { readings: vec![single("7ELS8135012345", "5540.5")], ..supplier_change() };
        run(s.terminate(&c, &contract("5000003"), gas, Some(&password()), None)).unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.record["finalBillAddress"]["name"], "Hausverwaltung Elbblick GmbH");
        assert_eq!(r.record["finalBillAddress"]["address"]["street"], "Postfach");

        let other = Termination {
            final_bill_address: FinalBillAddress::Other { name: Some("Max".into()), address: address("53111") },
            ..supplier_change()
        };
        let (s, r) = erika(other.clone());
        r.unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.record["finalBillAddress"]["type"], "OTHER");
        assert_eq!(r.record["finalBillAddress"]["name"], "Max");
        assert_eq!(r.record["finalBillAddress"]["address"]["street"], "Rheinufer");
        assert_eq!(r.record["finalBillAddress"]["address"]["country"], "DE");

        let bad = Termination {
            final_bill_address: FinalBillAddress::Other { name: None, address: address("5311") },
            ..supplier_change()
        };
        assert_eq!(code(erika(bad).1), ("POSTAL_CODE_INVALID", "/finalBillAddress/address/postalCode".into()));
    }

    fn reading(meter: &str, ht: i64, nt: i64) -> FinalReading {
        let value =
            |c: &str, v: i64| SubmittedValue { register: RegisterCode::parse(c).unwrap(), value: Decimal::from(v) };
        FinalReading {
            meter: MeterNumber::parse(meter).unwrap(),
            reading_date: TODAY,
            values: vec![value("HT", ht), value("NT", nt)],
            confirmed_implausible: false,
        }
    }

    fn single(meter: &str, value: &str) -> FinalReading {
        FinalReading {
            meter: MeterNumber::parse(meter).unwrap(),
            reading_date: TODAY,
            values: vec![SubmittedValue {
                register: RegisterCode::parse("SINGLE").unwrap(),
                value: value.parse().unwrap(),
            }],
            confirmed_implausible: false,
        }
    }

    fn with_readings(readings: Vec<FinalReading>) -> Termination {
        Termination { readings, ..supplier_change() }
    }

    #[test]
    fn a_final_reading_follows_the_reading_rules_on_a_meter_of_the_contract() {
        let (s, r) = erika(termination("MOVE_OUT", TODAY, Some(TODAY)));
        r.unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.record["moveOutDate"], "2026-12-01");
        assert_eq!(r.record["readings"][0]["meterNumber"], "1EMH0012345678");
        assert_eq!(r.record["readings"][0]["readingDate"], "2026-12-01");
        assert_eq!(r.record["readings"][0]["values"][0]["register"], "HT");
        assert_eq!(r.record["readings"][0]["values"][0]["value"], "29800");
        assert_eq!(r.record["readings"][0].get("implausible"), None);

        let (s, r) = erika(with_readings(vec![reading("1EMH0012345678", 100, 19700)]));
        let Err(ChangeError::ImplausibleAt { prefix, violations }) = r else { panic!("{r:?}") };
        assert_eq!((prefix.as_str(), violations[0].code()), ("/readings/0", "READING_BELOW_LAST_READING"));
        assert!(s.writer.committed().is_empty());

        // A typo outside the plausible range, confirmed by the customer: accepted and marked.
        let (_, r) = erika(with_readings(vec![reading("1EMH0012345678", 99800, 19700)]));
        let Err(ChangeError::ImplausibleAt { violations, .. }) = r else { panic!("{r:?}") };
        assert_eq!(violations[0].code(), "READING_IMPLAUSIBLE");
        let confirmed = FinalReading { confirmed_implausible: true, ..reading("1EMH0012345678", 99800, 19700) };
        let (s, r) = erika(with_readings(vec![confirmed]));
        r.unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(
            (&r.record["readings"][0]["implausible"], &r.record["readings"][0]["values"][0]["implausible"]),
            (&json!(true), &json!(true))
        );

        let foreign = with_readings(vec![reading("1EMH0012345678", 29800, 19700), single("1ESY1160012345", "1")]);
        assert_eq!(code(erika(foreign).1), ("METER_NOT_OF_CONTRACT", "/readings/1/meterNumber".into()));
        let twice =
            with_readings(vec![reading("1EMH0012345678", 29800, 19700), reading("1EMH0012345678", 29800, 19700)]);
        assert_eq!(code(erika(twice).1), ("FINAL_READING_TWICE", "/readings/1/meterNumber".into()));
        // Jürgen's gas meter is his, but of another contract.
        let s = service_with(demo(), &["1000002"]);
        let gas = with_readings(vec![single("7ELS8135012345", "5540.5")]);
        let r = run(s.terminate(&caller(&["1000002"]), &contract("5000002"), gas, Some(&password()), None));
        assert_eq!(code(r), ("METER_NOT_OF_CONTRACT", "/readings/0/meterNumber".into()));
    }

    #[test]
    fn every_meter_of_the_contract_needs_its_final_reading() {
        let (s, r) = erika(with_readings(Vec::new()));
        let Err(ChangeError::Invalid { code: refused, pointer, message }) = r else { panic!("{r:?}") };
        assert_eq!((refused, pointer.as_str()), ("FINAL_READING_REQUIRED", "/readings"));
        assert_eq!(message, "give the final reading of meter 1EMH0012345678 (HT, NT)");
        assert!(s.writer.committed().is_empty());

        // A second meter in the installation: both readings are needed, in any order.
        let mut snapshot = demo();
        let mut second =
            snapshot.meters.iter().find(|m| m.meter.meter_number.as_str() == "1ESY1160012345").unwrap().clone();
        second.partner_number = customer("1000001");
        second.meter.installation_id = snapshot.contracts[0].entity.installation_id.clone();
        snapshot.meters.push(second.clone());
        let both = || {
            let s = service_with(snapshot.clone(), &["1000001"]);
            move |t: Termination| {
                let r = run(s.terminate(&caller(&["1000001"]), &contract("5000001"), t, Some(&password()), None));
                (r, s.writer.committed().len())
            }
        };
        let (r, written) = both()(supplier_change());
        assert_eq!((code(r).0, written), ("FINAL_READING_REQUIRED", 0));
        let complete = with_readings(vec![single("1ESY1160012345", "53510"), reading("1EMH0012345678", 29800, 19700)]);
        let (r, written) = both()(complete);
        assert_eq!((r.is_ok(), written), (true, 1));

        // A meter that left the installation before today needs none.
        let mut ended = snapshot.clone();
        ended.meters.last_mut().unwrap().contract_end_date = Some(TODAY - Duration::days(1));
        let s = service_with(ended, &["1000001"]);
        run(s.terminate(&caller(&["1000001"]), &contract("5000001"), supplier_change(), Some(&password()), None))
            .unwrap();
    }

    #[test]
    fn the_options_name_each_reasons_dates_and_the_meters_to_read() {
        let s = service_with(demo(), &["1000001"]);
        let c = caller(&["1000001"]);
        let o = run(s.options(&c, &contract("5000001"))).unwrap();
        assert_eq!(o["blocked"], Value::Null);
        let reasons = o["reasons"].as_array().unwrap();
        assert_eq!(reasons.len(), 5);
        assert_eq!(
            reasons[0],
            json!({"reason": "MOVE_OUT", "label": "Auszug / Umzug", "earliestDate": "2026-10-20",
                   "latestDate": "2027-12-02", "moveOutDateRequired": true})
        );
        let supplier = reasons.iter().find(|r| r["reason"] == "SUPPLIER_CHANGE").unwrap();
        assert_eq!(
            (&supplier["earliestDate"], &supplier["moveOutDateRequired"]),
            (&json!("2026-12-31"), &json!(false))
        );
        assert_eq!(o["finalReadings"][0]["meterNumber"], "1EMH0012345678");
        assert_eq!(o["finalReadings"][0]["registers"], json!(["HT", "NT"]));
        assert_eq!(
            o["finalReadings"][0]["lastReadings"][0],
            json!({"register": "HT", "date": "2026-11-30", "value": "29735"})
        );
        // Every option's earliest date is accepted, the day before it refused.
        for r in reasons {
            let earliest = Date::parse(r["earliestDate"].as_str().unwrap(), iso_date::FORMAT).unwrap();
            let reason = r["reason"].as_str().unwrap();
            let at = |d: Date| termination(reason, d, Some(d));
            assert!(erika(at(earliest)).1.is_ok(), "{reason}");
            assert_eq!(code(erika(at(earliest - Duration::days(1))).1).0, "TERMINATION_DATE_TOO_EARLY", "{reason}");
        }

        // Another customer's contract: not found.
        assert!(matches!(run(s.options(&c, &contract("5000002"))), Err(ChangeError::NotFound)));
        // A pending termination blocks, and says so.
        let mut snapshot = demo();
        snapshot.contracts[0].entity.pending_termination = Some(PendingTermination {
            request_id: RequestId::new_random(),
            reason: "OTHER".into(),
            termination_date: date!(2027 - 01 - 31),
        });
        let o = run(service_with(snapshot, &["1000001"]).options(&c, &contract("5000001"))).unwrap();
        assert_eq!(
            (o["blocked"]["code"].as_str(), o["reasons"].as_array().unwrap().len()),
            (Some("TERMINATION_PENDING"), 0)
        );
        // A contract ending in ten days: only the reasons that can end it earlier.
        let mut snapshot = demo();
        snapshot.contracts[0].entity.end_date = Some(TODAY + Duration::days(10));
        let o = run(service_with(snapshot, &["1000001"]).options(&c, &contract("5000001"))).unwrap();
        let keys: Vec<&str> = o["reasons"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
        assert_eq!(keys, ["MOVE_OUT", "PRICE_CHANGE", "DEATH"]);
        assert_eq!(o["reasons"][0]["latestDate"], "2026-12-10");
    }

    fn new_payment(method: PaymentMethod, iban: Option<&str>) -> Termination {
        let bank_account = iban.map(|i| AccountInput { holder: "Erika".into(), iban: i.into(), bic: None });
        Termination { payment: FinalBillPayment::New { payment_method: method, bank_account }, ..supplier_change() }
    }

    #[test]
    fn the_final_bill_is_paid_as_kept_or_as_given_under_the_bank_rules() {
        assert_eq!(
            code(erika(new_payment(PaymentMethod::SepaDirectDebit, None)).1),
            ("BANK_ACCOUNT_REQUIRED", "/finalBillPayment/bankAccount".into())
        );
        assert_eq!(
            code(erika(new_payment(PaymentMethod::SepaDirectDebit, Some("DE02120300000000202052"))).1),
            ("IBAN_INVALID", "/finalBillPayment/bankAccount/iban".into())
        );
        let (s, r) = erika(new_payment(PaymentMethod::SepaDirectDebit, Some("DE02 1203 0000 0000 2020 51")));
        r.unwrap();
        assert_eq!(
            s.writer.committed()[0].record["finalBillPayment"],
            json!({"type": "NEW", "paymentMethod": "SEPA_DIRECT_DEBIT", "bankAccount": {"holder": "Erika", "iban": "DE02120300000000202051", "bic": null}})
        );
        let (s, r) = erika(new_payment(PaymentMethod::BankTransfer, None));
        r.unwrap();
        assert_eq!(s.writer.committed()[0].record["finalBillPayment"]["bankAccount"], Value::Null);

        // Kept, without bank details on file: by transfer.
        let mut snapshot = demo();
        snapshot.bank_details.clear();
        let s = service_with(snapshot, &["1000001"]);
        run(s.terminate(&caller(&["1000001"]), &contract("5000001"), supplier_change(), Some(&password()), None))
            .unwrap();
        assert_eq!(s.writer.committed()[0].record["finalBillPayment"]["paymentMethod"], "BANK_TRANSFER");
    }

    #[test]
    fn an_ending_contract_may_only_be_ended_earlier() {
        let with_end = |end: Date| {
            let mut snapshot = demo();
            snapshot.contracts[0].entity.end_date = Some(end);
            let s = service_with(snapshot, &["1000001"]);
            run(s.terminate(&caller(&["1000001"]), &contract("5000001"), supplier_change(), Some(&password()), None))
        };
        let (c, message) = code(with_end(date!(2026 - 12 - 31)));
        assert_eq!((c, message.as_str()), ("CONTRACT_ENDED", "the contract ends on 2026-12-31 already"));
        assert_eq!(code(with_end(date!(2026 - 12 - 30))).0, "CONTRACT_ENDED");
        with_end(date!(2027 - 01 - 01)).unwrap();
        // A contract that ended today cannot be terminated, even with an earlier date.
        let mut snapshot = demo();
        snapshot.contracts[0].entity.end_date = Some(TODAY);
        let s = service_with(snapshot, &["1000001"]);
        let moved = termination("MOVE_OUT", TODAY - Duration::days(5), Some(TODAY - Duration::days(5)));
        let r = run(s.terminate(&caller(&["1000001"]), &contract("5000001"), moved, Some(&password()), None));
        assert_eq!(code(r).0, "CONTRACT_ENDED");
        let mut snapshot = demo();
        snapshot.contracts[0].entity.end_date = Some(TODAY + Duration::days(1));
        let s = service_with(snapshot, &["1000001"]);
        let moved = termination("MOVE_OUT", TODAY - Duration::days(5), Some(TODAY - Duration::days(5)));
        run(s.terminate(&caller(&["1000001"]), &contract("5000001"), moved, Some(&password()), None)).unwrap();
    }

    #[test]
    fn a_pending_termination_or_an_unknown_reason_is_refused() {
        let mut snapshot = demo();
        let pending = PendingTermination {
            request_id: RequestId::new_random(),
            reason: "OTHER".into(),
            termination_date: date!(2027 - 01 - 31),
        };
        snapshot.contracts[0].entity.pending_termination = Some(pending.clone());
        let s = service_with(snapshot, &["1000001"]);
        let r =
            run(s.terminate(&caller(&["1000001"]), &contract("5000001"), supplier_change(), Some(&password()), None));
        let (c, message) = code(r);
        assert_eq!(c, "TERMINATION_PENDING");
        assert!(message.contains(&pending.request_id.to_string()), "{message}");
        assert_eq!(
            code(erika(termination("BORED", date!(2026 - 12 - 31), None)).1),
            ("UNKNOWN_REASON", "/reason".into())
        );
        assert_eq!(
            code(erika(termination("PRICE_CHANGE", TODAY - Duration::days(1), None)).1).0,
            "TERMINATION_DATE_TOO_EARLY"
        );
    }

    #[test]
    fn ownership_then_replay_then_confirmation() {
        let s = service_with(demo(), &["1000001"]);
        let c = caller(&["1000001"]);
        let r = run(s.terminate(&c, &contract("5000002"), supplier_change(), Some(&password()), None));
        assert!(matches!(r, Err(ChangeError::NotFound)), "{r:?}");
        let r = run(s.terminate(&c, &contract("5000001"), supplier_change(), None, None));
        assert!(matches!(r, Err(ChangeError::ReauthenticationRequired)), "{r:?}");
        let first =
            run(s.terminate(&c, &contract("5000001"), supplier_change(), Some(&password()), key("k", "fp"))).unwrap();
        assert_eq!(run(s.terminate(&c, &contract("5000001"), supplier_change(), None, key("k", "fp"))).unwrap(), first);
        let r = run(s.terminate(&c, &contract("5000001"), supplier_change(), None, key("k", "other")));
        assert!(matches!(r, Err(ChangeError::IdempotencyKeyReused)), "{r:?}");
        assert_eq!(s.writer.committed().len(), 1);
        // Signed in just now: no password needed.
        let fresh = caller_at(&["1000001"], NOW);
        run(s.terminate(&fresh, &contract("5000001"), supplier_change(), None, key("k2", "fp"))).unwrap();
        assert_eq!(s.writer.committed().len(), 2);
    }
}
