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
        let email = self.confirmation.notice_address(caller, customer_email).await;
        let text = format!(
            "Guten Tag,\n\nIhre Kündigung des Vertrags {contract_number} zum {date} ist bei uns eingegangen. \
             Sie erhalten eine Bestätigung, sobald wir sie bearbeitet haben.\n\n\
             Wenn Sie nicht selbst gekündigt haben, rufen Sie uns bitte sofort an.\n"
        );
        changes::notify(&self.mailer, email.as_deref(), "Ihre Kündigung ist eingegangen", text).await;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn each_reason_has_its_dates() {
        let p = TerminationPolicy::default();
        let today = date!(2026 - 12 - 01);
        let start = date!(2021 - 03 - 01);
        let code = |t: Termination| match check_dates(&p, &t, start, today) {
            Ok(()) => "OK",
            Err(ChangeError::Invalid { code, .. }) => code,
            Err(e) => panic!("{e:?}"),
        };
        let moved = date!(2026 - 11 - 20);
        assert_eq!(code(termination("MOVE_OUT", moved, Some(moved))), "OK", "a move reported late");
        assert_eq!(code(termination("MOVE_OUT", moved, None)), "MOVE_OUT_DATE_REQUIRED");
        assert_eq!(
            code(termination("MOVE_OUT", moved, Some(date!(2026 - 11 - 21)))),
            "TERMINATION_DATE_NOT_MOVE_OUT_DATE"
        );
        let long_ago = date!(2026 - 10 - 01);
        assert_eq!(code(termination("MOVE_OUT", long_ago, Some(long_ago))), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(code(termination("SUPPLIER_CHANGE", date!(2026 - 12 - 15), None)), "TERMINATION_DATE_TOO_EARLY");
        assert_eq!(code(termination("SUPPLIER_CHANGE", date!(2026 - 12 - 31), None)), "OK");
        assert_eq!(code(termination("PRICE_CHANGE", today, None)), "OK");
        assert_eq!(code(termination("DEATH", date!(2026 - 09 - 15), None)), "OK");
        assert_eq!(code(termination("OTHER", date!(2028 - 01 - 01), None)), "TERMINATION_DATE_TOO_LATE");
    }
}
