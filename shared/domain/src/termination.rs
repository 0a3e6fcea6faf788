//! Contract termination (Kündigung, capability 13): reason from the code list, a date the
//! reason allows, the final bill's address, an optional final reading (same plausibility
//! as every reading) and how the final bill is paid (keep the bank details, or give new
//! ones under the bank-details rules). Sensitive like a bank-details change.

use crate::bank::{AccountInput, checked_account};
use crate::billing::checked_address;
use crate::changes::{self, ChangeError, Confirmation, Draft};
use crate::clock::Clock;
use crate::entities::{Address, PaymentMethod, PendingTermination, iso_date};
use crate::identity::sessions::Caller;
use crate::identity::{LoginStore, LoginThrottle, Mailer};
use crate::ids::{ContractNumber, IdempotencyKey, MeterNumber, RequestId};
use crate::plausibility::{ReadingPolicy, SubmittedValue, check_reading};
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
}

#[derive(Debug, Clone)]
pub struct Termination {
    pub reason: String,
    pub termination_date: Date,
    pub move_out_date: Option<Date>,
    pub final_bill_address: FinalBillAddress,
    pub reading: Option<FinalReading>,
    pub payment: FinalBillPayment,
}

/// The dates each reason allows (configuration).
#[derive(Debug, Clone, Copy)]
pub struct TerminationPolicy {
    /// Notice for an ordinary termination (supplier change, other reasons).
    pub notice_days: i64,
    /// How long after moving out the move may still be reported.
    pub move_out_late_days: i64,
    /// How far back a termination because of a death may reach.
    pub death_late_days: i64,
    pub max_days_ahead: i64,
    pub readings: ReadingPolicy,
}

impl Default for TerminationPolicy {
    fn default() -> Self {
        Self {
            notice_days: 30,
            move_out_late_days: 42,
            death_late_days: 90,
            max_days_ahead: 366,
            readings: ReadingPolicy::default(),
        }
    }
}

impl TerminationPolicy {
    /// The earliest termination date for a reason; a reason without rules of its own is
    /// an ordinary termination with notice.
    pub fn earliest(&self, reason: &str, today: Date) -> Date {
        match reason {
            "MOVE_OUT" => today - Duration::days(self.move_out_late_days),
            "DEATH" => today - Duration::days(self.death_late_days),
            "PRICE_CHANGE" => today,
            _ => today + Duration::days(self.notice_days),
        }
    }
}

/// The date rules, without storage.
pub fn check_dates(
    policy: &TerminationPolicy,
    t: &Termination,
    contract_start: Date,
    today: Date,
) -> Result<(), ChangeError> {
    if t.reason == "MOVE_OUT" {
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
    let earliest = policy.earliest(&t.reason, today).max(contract_start);
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
        // A contract that ends anyway can still be ended earlier (a move before a fixed end).
        if let Some(end) = contract.end_date.filter(|end| *end <= t.termination_date.max(today)) {
            return Err(ChangeError::not_possible(
                "CONTRACT_ENDED",
                format!("the contract ends on {} already", iso_date::format(end)),
            ));
        }
        if let Some(pending) = &contract.pending_termination {
            return Err(ChangeError::not_possible(
                "TERMINATION_PENDING",
                format!("a termination ({}) is already being processed", pending.request_id),
            ));
        }
        let (reasons, account, bank) = futures::join!(
            self.reads.code_list("terminationReasons"),
            self.reads.account(caller, &contract.account_number),
            self.reads.bank_details(caller, &contract.account_number),
        );
        if !reasons?.iter().any(|r| r.key == t.reason) {
            return Err(ChangeError::invalid("/reason", "UNKNOWN_REASON", "not a termination reason of the code list"));
        }
        check_dates(&self.policy, &t, contract.start_date, today)?;
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

        let reading = match &t.reading {
            None => Value::Null,
            Some(r) => {
                let (meter, _) = self
                    .reads
                    .meter_readings(caller, &r.meter)
                    .await?
                    .filter(|(m, _)| m.meter.installation_id == contract.installation_id)
                    .ok_or_else(|| {
                        ChangeError::invalid(
                            "/reading/meterNumber",
                            "METER_NOT_OF_CONTRACT",
                            "the meter does not belong to this contract",
                        )
                    })?;
                let accepted = check_reading(&meter, r.reading_date, &r.values, today, &self.policy.readings)
                    .map_err(ChangeError::Implausible)?;
                json!({ "meterNumber": r.meter, "readingDate": iso_date::format(r.reading_date), "values": accepted })
            }
        };

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
                "reading": reading,
                "finalBillPayment": payment,
            }),
            mirror_updates: vec![MirrorUpdate::Pending {
                object: MirrorObject::Contract(account.partner_number.clone(), contract_number.clone()),
                set: Map::from_iter([("pendingTermination".to_owned(), json!(pending))]),
                // A termination submitted at the same time loses.
                expect: Map::from_iter([("pendingTermination".to_owned(), Value::Null)]),
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
            reading: None,
            payment: FinalBillPayment::Keep,
        }
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
        let check = |date: Date| check_dates(&p, &termination("PRICE_CHANGE", date, None), start, TODAY);
        assert_eq!(code_of(check(start)), "OK");
        let Err(ChangeError::Invalid { code, pointer, message }) = check(start - Duration::days(1)) else { panic!() };
        assert_eq!((code, pointer.as_str()), ("TERMINATION_DATE_TOO_EARLY", "/terminationDate"));
        assert_eq!(message, "for this reason the earliest termination date is 2026-12-06");
        let Err(ChangeError::Invalid { message, .. }) = check(TODAY + Duration::days(400)) else { panic!() };
        assert_eq!(message, "terminate at most 366 days ahead");
    }

    #[test]
    fn the_earliest_date_per_reason() {
        let p = TerminationPolicy::default();
        assert_eq!(p.earliest("MOVE_OUT", TODAY), date!(2026 - 10 - 20));
        assert_eq!(p.earliest("DEATH", TODAY), date!(2026 - 09 - 02));
        assert_eq!(p.earliest("PRICE_CHANGE", TODAY), TODAY);
        assert_eq!(p.earliest("SUPPLIER_CHANGE", TODAY), date!(2026 - 12 - 31));
        assert_eq!(p.earliest("ANYTHING", TODAY), date!(2026 - 12 - 31));
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
            prop_assert_eq!(code_of(check_dates(&TerminationPolicy::default(), &t, start, TODAY)), expected);
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
        let [MirrorUpdate::Pending { object, set, expect }] = r.mirror_updates.as_slice() else { panic!() };
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
        run(s.terminate(&c, &contract("5000003"), supplier_change(), Some(&password()), None)).unwrap();
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
        }
    }

    #[test]
    fn a_final_reading_follows_the_reading_rules_on_a_meter_of_the_contract() {
        let move_out = Termination {
            reading: Some(reading("1EMH0012345678", 29800, 19700)),
            ..termination("MOVE_OUT", TODAY, Some(TODAY))
        };
        let (s, r) = erika(move_out);
        r.unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.record["moveOutDate"], "2026-12-01");
        assert_eq!(r.record["reading"]["meterNumber"], "1EMH0012345678");
        assert_eq!(r.record["reading"]["readingDate"], "2026-12-01");
        assert_eq!(r.record["reading"]["values"][0]["register"], "HT");
        assert_eq!(r.record["reading"]["values"][0]["value"], "29800");

        let below = Termination { reading: Some(reading("1EMH0012345678", 100, 19700)), ..supplier_change() };
        let (s, r) = erika(below);
        let Err(ChangeError::Implausible(v)) = r else { panic!("{r:?}") };
        assert_eq!(v[0].code(), "READING_BELOW_LAST_READING");
        assert!(s.writer.committed().is_empty());

        let foreign = Termination { reading: Some(reading("1ESY1160012345", 1, 1)), ..supplier_change() };
        assert_eq!(code(erika(foreign).1), ("METER_NOT_OF_CONTRACT", "/reading/meterNumber".into()));
        // Jürgen's gas meter is his, but of another contract.
        let s = service_with(demo(), &["1000002"]);
        let gas = Termination { reading: Some(reading("7ELS8135012345", 1, 1)), ..supplier_change() };
        let r = run(s.terminate(&caller(&["1000002"]), &contract("5000002"), gas, Some(&password()), None));
        assert_eq!(code(r), ("METER_NOT_OF_CONTRACT", "/reading/meterNumber".into()));
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
