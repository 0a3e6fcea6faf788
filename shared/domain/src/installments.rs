//! Installment change (Abschlagsänderung, capability 7, write side): a new amount from a
//! due date on. Refused while the plan is locked (e.g. its last execution is still being
//! processed), outside the configured bounds, or from a date that is past or no due date.

use crate::changes::{self, ChangeError, Draft};
use crate::clock::Clock;
use crate::entities::iso_date;
use crate::identity::sessions::Caller;
use crate::ids::{AccountNumber, IdempotencyKey, RequestId};
use crate::ports::RequestWriter;
use crate::reads::{ScopedReads, next_due_date};
use crate::requests::{Activity, ActivityOwner, MirrorObject, MirrorUpdate, RequestKind};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use time::{Date, Duration};

/// Limits of an installment change (configuration).
#[derive(Debug, Clone, Copy)]
pub struct InstallmentPolicy {
    pub min_amount: Decimal,
    pub max_amount: Decimal,
    /// How far ahead the new amount may start.
    pub max_days_ahead: i64,
}

impl Default for InstallmentPolicy {
    fn default() -> Self {
        Self { min_amount: Decimal::new(500, 2), max_amount: Decimal::new(500_000, 2), max_days_ahead: 366 }
    }
}

/// The checks that need no storage: amount within bounds and not the current one; the
/// date not past, not too far ahead, and a due date of the plan.
pub fn check_change(
    policy: &InstallmentPolicy,
    current: Decimal,
    due_day: u8,
    amount: Decimal,
    valid_from: Date,
    today: Date,
) -> Result<(), ChangeError> {
    if amount < policy.min_amount || amount > policy.max_amount || amount.scale() > 2 {
        return Err(ChangeError::invalid(
            "/amount",
            "AMOUNT_OUT_OF_BOUNDS",
            format!("the amount must be between {} and {} EUR", policy.min_amount, policy.max_amount),
        ));
    }
    if amount == current {
        return Err(ChangeError::invalid("/amount", "NOTHING_TO_CHANGE", "this is the current amount"));
    }
    if valid_from < today {
        return Err(ChangeError::invalid(
            "/validFrom",
            "VALID_FROM_IN_PAST",
            "the new amount cannot start in the past",
        ));
    }
    if valid_from > today + Duration::days(policy.max_days_ahead) {
        return Err(ChangeError::invalid(
            "/validFrom",
            "VALID_FROM_TOO_FAR",
            format!("the new amount must start within {} days", policy.max_days_ahead),
        ));
    }
    if next_due_date(valid_from, due_day) != valid_from {
        return Err(ChangeError::invalid(
            "/validFrom",
            "VALID_FROM_NOT_DUE_DATE",
            format!(
                "the new amount starts on a due date; the next one is {}",
                iso_date::format(next_due_date(valid_from.max(today), due_day))
            ),
        ));
    }
    Ok(())
}

pub struct InstallmentService<R, W, C> {
    pub reads: R,
    pub writer: W,
    pub clock: C,
    pub policy: InstallmentPolicy,
}

impl<R: ScopedReads, W: RequestWriter, C: Clock> InstallmentService<R, W, C> {
    pub async fn change(
        &self,
        caller: &Caller,
        account: &AccountNumber,
        amount: Decimal,
        valid_from: Date,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ChangeError> {
        let claim = changes::claim("installment-change", account.as_str(), idempotency);
        let (earlier, plan, contracts) = futures::join!(
            changes::stored(&self.writer, &claim),
            self.reads.installment_plan(caller, account),
            self.reads.account_contracts(caller, account),
        );
        let owned = plan?.ok_or(ChangeError::NotFound)?;
        if let Some(answer) = changes::replay(earlier?, &claim)? {
            return Ok(answer);
        }
        let plan = owned.entity;
        if let Some(reason) = plan.lock_reason() {
            return Err(ChangeError::not_possible(
                "INSTALLMENT_CHANGE_LOCKED",
                format!("the installment plan cannot be changed now ({reason})"),
            ));
        }
        if let Some(pending) = &plan.pending_change {
            return Err(ChangeError::not_possible(
                "INSTALLMENT_CHANGE_PENDING",
                format!("an installment change ({}) is still being processed", pending.request_id),
            ));
        }
        check_change(&self.policy, plan.amount, plan.due_day, amount, valid_from, self.clock.today())?;

        let installations: Vec<_> =
            contracts?.map(|(_, cs)| cs).unwrap_or_default().into_iter().map(|c| c.installation_id).collect();
        let request_id = RequestId::new_random();
        let pending = crate::entities::PendingInstallmentChange { request_id, amount, valid_from };
        let subject =
            format!("Abschlagsänderung Vertragskonto {account}: {amount} EUR ab {}", iso_date::format(valid_from));
        let mut request = Draft {
            request_id,
            kind: RequestKind::InstallmentChange,
            customer: owned.partner_number.clone(),
            now: self.clock.now(),
            activity_type: "INSTALLMENT_CHANGE_REQUESTED",
            subject: subject.clone(),
            details: json!({
                "accountNumber": account,
                "amount": amount,
                "previousAmount": plan.amount,
                "currency": plan.currency,
                "validFrom": iso_date::format(valid_from),
                "installationIds": installations,
            }),
            mirror_updates: vec![MirrorUpdate::Pending {
                object: MirrorObject::InstallmentPlan(owned.partner_number.clone(), account.clone()),
                set: Map::from_iter([("pendingChange".to_owned(), json!(pending))]),
                // The CRM may lock the plan meanwhile, or another change may win the race:
                // then nothing is written.
                expect: Map::from_iter([
                    ("changeLocked".to_owned(), json!(false)),
                    ("pendingChange".to_owned(), Value::Null),
                ]),
                previous: Map::new(),
            }],
            claim,
            answer: Map::from_iter([("accountNumber".to_owned(), json!(account))]),
        }
        .request();
        request.activities.extend(installations.into_iter().map(|i| Activity {
            owner: ActivityOwner::Installation(i),
            activity_type: "INSTALLMENT_CHANGE_REQUESTED",
            subject: subject.clone(),
            text: None,
            route_to: None,
        }));
        changes::commit(&self.writer, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::entities::PendingInstallmentChange;
    use crate::memory::{MemoryDirectory, MemoryWriter};
    use crate::requests::{ActivityOwner, MirrorUpdate, WriteError};
    use crate::testkit::{NOW, caller, demo, key, run};
    use proptest::prelude::*;
    use std::str::FromStr;
    use time::macros::date;

    fn code(r: Result<(), ChangeError>) -> &'static str {
        match r {
            Ok(()) => "OK",
            Err(ChangeError::Invalid { code, .. }) => code,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn bounds_dates_and_due_days() {
        let p = InstallmentPolicy::default();
        let today = date!(2026 - 12 - 01);
        let check = |amount: i64, from: Date| {
            code(check_change(&p, Decimal::new(6100, 2), 15, Decimal::new(amount, 2), from, today))
        };
        assert_eq!(check(7500, date!(2026 - 12 - 15)), "OK");
        assert_eq!(check(7500, date!(2027 - 03 - 15)), "OK");
        assert_eq!(check(499, date!(2026 - 12 - 15)), "AMOUNT_OUT_OF_BOUNDS");
        assert_eq!(check(500_001, date!(2026 - 12 - 15)), "AMOUNT_OUT_OF_BOUNDS");
        assert_eq!(check(6100, date!(2026 - 12 - 15)), "NOTHING_TO_CHANGE");
        assert_eq!(check(7500, date!(2026 - 11 - 15)), "VALID_FROM_IN_PAST");
        assert_eq!(check(7500, date!(2026 - 12 - 16)), "VALID_FROM_NOT_DUE_DATE");
        assert_eq!(check(7500, date!(2028 - 01 - 15)), "VALID_FROM_TOO_FAR");
    }

    #[test]
    fn the_amount_bounds_and_cents_are_inclusive() {
        let p = InstallmentPolicy::default();
        let today = date!(2026 - 12 - 15);
        let check = |amount: &str| {
            code(check_change(&p, Decimal::new(6100, 2), 15, Decimal::from_str(amount).unwrap(), today, today))
        };
        assert_eq!(check("5.00"), "OK", "the minimum itself");
        assert_eq!(check("4.99"), "AMOUNT_OUT_OF_BOUNDS");
        assert_eq!(check("5000.00"), "OK", "the maximum itself");
        assert_eq!(check("5000.01"), "AMOUNT_OUT_OF_BOUNDS");
        assert_eq!(check("75.10"), "OK", "cents");
        assert_eq!(check("75.105"), "AMOUNT_OUT_OF_BOUNDS", "no fractions of a cent");
        assert_eq!(check("-75"), "AMOUNT_OUT_OF_BOUNDS");
        let Err(ChangeError::Invalid { pointer, message, .. }) =
            check_change(&p, Decimal::ONE, 15, Decimal::ZERO, today, today)
        else {
            panic!()
        };
        assert_eq!(
            (pointer.as_str(), message.as_str()),
            ("/amount", "the amount must be between 5.00 and 5000.00 EUR")
        );
    }

    #[test]
    fn the_valid_from_window_is_today_up_to_the_limit() {
        // Due day 15; today is a due date; the limit (31 days) is the next one.
        let p = InstallmentPolicy { max_days_ahead: 31, ..InstallmentPolicy::default() };
        let today = date!(2026 - 12 - 15);
        let check = |from: Date| code(check_change(&p, Decimal::new(6100, 2), 15, Decimal::new(7500, 2), from, today));
        assert_eq!(check(today), "OK", "from today");
        assert_eq!(check(date!(2026 - 11 - 15)), "VALID_FROM_IN_PAST");
        assert_eq!(check(date!(2026 - 12 - 14)), "VALID_FROM_IN_PAST", "yesterday");
        assert_eq!(check(date!(2027 - 01 - 15)), "OK", "exactly the limit ahead");
        let shorter = InstallmentPolicy { max_days_ahead: 30, ..p };
        assert_eq!(
            code(check_change(
                &shorter,
                Decimal::new(6100, 2),
                15,
                Decimal::new(7500, 2),
                date!(2027 - 01 - 15),
                today
            )),
            "VALID_FROM_TOO_FAR",
            "one day beyond the limit"
        );
        let Err(ChangeError::Invalid { pointer, message, .. }) =
            check_change(&shorter, Decimal::ONE, 15, Decimal::TEN, date!(2027 - 01 - 15), today)
        else {
            panic!()
        };
        assert_eq!((pointer.as_str(), message.as_str()), ("/validFrom", "the new amount must start within 30 days"));
    }

    #[test]
    fn a_date_that_is_no_due_date_names_the_next_one() {
        let p = InstallmentPolicy::default();
        let today = date!(2026 - 12 - 01);
        let message = |from: Date| match check_change(&p, Decimal::ONE, 15, Decimal::TEN, from, today) {
            Err(ChangeError::Invalid { code: "VALID_FROM_NOT_DUE_DATE", pointer, message }) => {
                assert_eq!(pointer, "/validFrom");
                message
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(message(date!(2026 - 12 - 16)), "the new amount starts on a due date; the next one is 2027-01-15");
        assert_eq!(message(date!(2026 - 12 - 02)), "the new amount starts on a due date; the next one is 2026-12-15");
        // The month's last day stands in for a due day the month does not have.
        assert_eq!(code(check_change(&p, Decimal::ONE, 31, Decimal::TEN, date!(2027 - 02 - 28), today)), "OK");
    }

    proptest! {
        #[test]
        fn an_amount_is_accepted_exactly_within_the_bounds(cents in -1_000i64..600_000) {
            let p = InstallmentPolicy::default();
            let today = date!(2026 - 12 - 15);
            let amount = Decimal::new(cents, 2);
            let r = check_change(&p, Decimal::new(6100, 2), 15, amount, today, today);
            let expected = if !(500..=500_000).contains(&cents) {
                "AMOUNT_OUT_OF_BOUNDS"
            } else if cents == 6100 {
                "NOTHING_TO_CHANGE"
            } else {
                "OK"
            };
            prop_assert_eq!(code(r), expected);
        }

        #[test]
        fn a_date_is_accepted_exactly_on_due_dates_within_the_window(offset in -400i64..800, due_day in 1u8..=31) {
            let p = InstallmentPolicy::default();
            let today = date!(2026 - 12 - 15);
            let from = today + Duration::days(offset);
            let r = check_change(&p, Decimal::new(6100, 2), due_day, Decimal::new(7500, 2), from, today);
            let last_day = from.month().length(from.year());
            let due = from.day() == due_day.min(last_day);
            let expected = if offset < 0 {
                "VALID_FROM_IN_PAST"
            } else if offset > 366 {
                "VALID_FROM_TOO_FAR"
            } else if !due {
                "VALID_FROM_NOT_DUE_DATE"
            } else {
                "OK"
            };
            prop_assert_eq!(code(r), expected);
        }
    }

    type Service = InstallmentService<MemoryDirectory, MemoryWriter, FixedClock>;

    fn service_with(snapshot: crate::export::MirrorSnapshot) -> Service {
        InstallmentService {
            reads: MemoryDirectory::new(snapshot),
            writer: MemoryWriter::default(),
            clock: FixedClock(NOW),
            policy: InstallmentPolicy::default(),
        }
    }

    fn service() -> Service {
        service_with(demo())
    }

    fn account(n: &str) -> AccountNumber {
        AccountNumber::parse(n).unwrap()
    }

    #[test]
    fn a_change_writes_the_pending_amount_and_activities_at_customer_and_installation() {
        let s = service();
        let answer = run(s.change(
            &caller(&["1000001"]),
            &account("800000001"),
            Decimal::new(15000, 2),
            date!(2026 - 12 - 15),
            None,
        ))
        .unwrap();
        let committed = s.writer.committed();
        assert_eq!(committed.len(), 1);
        let r = &committed[0];
        assert_eq!(answer["accountNumber"], "800000001");
        assert_eq!(answer["requestId"], json!(r.request_id));
        assert_eq!(answer["requestType"], "INSTALLMENT_CHANGE");
        assert_eq!(r.kind, RequestKind::InstallmentChange);
        assert_eq!(r.customer.as_ref().unwrap().as_str(), "1000001");
        assert_eq!(r.record["amount"], "150.00");
        assert_eq!(r.record["previousAmount"], "142.00");
        assert_eq!(r.record["validFrom"], "2026-12-15");
        assert_eq!(r.record["installationIds"], json!(["A-7000001"]));
        let owners: Vec<String> = r.activities.iter().map(|a| a.owner.key()).collect();
        assert_eq!(owners, ["BP#1000001", "INST#A-7000001"]);
        assert!(r.activities.iter().all(|a| a.activity_type == "INSTALLMENT_CHANGE_REQUESTED"));
        let [MirrorUpdate::Pending { object, set, expect, .. }] = r.mirror_updates.as_slice() else { panic!() };
        assert_eq!(*object, MirrorObject::InstallmentPlan(crate::testkit::customer("1000001"), account("800000001")));
        assert_eq!(set["pendingChange"]["requestId"], json!(r.request_id));
        assert_eq!(set["pendingChange"]["validFrom"], "2026-12-15");
        assert_eq!(expect["changeLocked"], json!(false));
        assert_eq!(expect["pendingChange"], Value::Null);
        assert!(matches!(r.activities[1].owner, ActivityOwner::Installation(_)));
    }

    #[test]
    fn a_plan_whose_last_installment_is_being_processed_cannot_be_changed() {
        // The bakery's plan: no lock flag from the CRM, but its last installment is IN_PROGRESS.
        let s = service();
        let refused = run(s.change(
            &caller(&["1000003"]),
            &account("800000004"),
            Decimal::new(15000, 2),
            date!(2026 - 12 - 15),
            None,
        ));
        let Err(ChangeError::NotPossible { code, message }) = refused else { panic!("{refused:?}") };
        assert_eq!(code, "INSTALLMENT_CHANGE_LOCKED");
        assert!(message.contains("LAST_EXECUTION_IN_PROGRESS"), "{message}");
        assert!(s.writer.committed().is_empty());
        // Once the CRM reports it paid, the plan can be changed.
        let mut snapshot = demo();
        let plan = &mut snapshot.installment_plans[3].entity;
        plan.installments.iter_mut().for_each(|i| i.status = crate::entities::InstallmentStatus::Paid);
        let s = service_with(snapshot);
        let r = run(s.change(
            &caller(&["1000003"]),
            &account("800000004"),
            Decimal::new(15000, 2),
            date!(2026 - 12 - 15),
            None,
        ));
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn a_locked_or_pending_plan_refuses_the_change() {
        let s = service();
        let refused = run(s.change(
            &caller(&["1000002"]),
            &account("800000003"),
            Decimal::new(15000, 2),
            date!(2026 - 12 - 28),
            None,
        ));
        let Err(ChangeError::NotPossible { code, message }) = refused else { panic!("{refused:?}") };
        assert_eq!(code, "INSTALLMENT_CHANGE_LOCKED");
        assert!(message.contains("LAST_EXECUTION_IN_PROGRESS"), "{message}");

        let mut snapshot = demo();
        snapshot.installment_plans[2].entity.change_locked_reason = None;
        let pending = PendingInstallmentChange {
            request_id: crate::ids::RequestId::new_random(),
            amount: Decimal::TEN,
            valid_from: date!(2027 - 01 - 15),
        };
        snapshot.installment_plans[0].entity.pending_change = Some(pending.clone());
        let s = service_with(snapshot);
        let refused = run(s.change(
            &caller(&["1000002"]),
            &account("800000003"),
            Decimal::new(15000, 2),
            date!(2026 - 12 - 28),
            None,
        ));
        let Err(ChangeError::NotPossible { code: "INSTALLMENT_CHANGE_LOCKED", message }) = refused else {
            panic!("{refused:?}")
        };
        assert!(message.contains("(LOCKED)"), "{message}");
        let refused = run(s.change(
            &caller(&["1000001"]),
            &account("800000001"),
            Decimal::new(15000, 2),
            date!(2026 - 12 - 15),
            None,
        ));
        let Err(ChangeError::NotPossible { code: "INSTALLMENT_CHANGE_PENDING", message }) = refused else {
            panic!("{refused:?}")
        };
        assert!(message.contains(&pending.request_id.to_string()), "{message}");
        assert!(s.writer.committed().is_empty());
    }

    #[test]
    fn the_rules_refuse_before_anything_is_written() {
        let s = service();
        let refused = run(s.change(
            &caller(&["1000001"]),
            &account("800000001"),
            Decimal::new(14200, 2),
            date!(2026 - 12 - 15),
            None,
        ));
        assert!(matches!(refused, Err(ChangeError::Invalid { code: "NOTHING_TO_CHANGE", .. })), "{refused:?}");
        let refused = run(s.change(
            &caller(&["1000001"]),
            &account("800000001"),
            Decimal::new(15000, 2),
            date!(2026 - 11 - 30),
            None,
        ));
        assert!(matches!(refused, Err(ChangeError::Invalid { code: "VALID_FROM_IN_PAST", .. })), "{refused:?}");
        assert!(s.writer.committed().is_empty());
    }

    #[test]
    fn another_customers_plan_is_not_found() {
        let s = service();
        let refused = run(s.change(
            &caller(&["1000002"]),
            &account("800000001"),
            Decimal::new(15000, 2),
            date!(2026 - 12 - 15),
            key("k", "fp"),
        ));
        assert!(matches!(refused, Err(ChangeError::NotFound)), "{refused:?}");
    }

    #[test]
    fn a_retry_replays_the_answer_and_another_body_under_the_key_is_refused() {
        let s = service();
        let change = |amount: i64, fp: &str| {
            run(s.change(
                &caller(&["1000001"]),
                &account("800000001"),
                Decimal::new(amount, 2),
                date!(2026 - 12 - 15),
                key("k-1", fp),
            ))
        };
        let first = change(15000, "fp-a").unwrap();
        assert_eq!(change(15000, "fp-a").unwrap(), first);
        assert!(matches!(change(16000, "fp-b"), Err(ChangeError::IdempotencyKeyReused)));
        assert_eq!(s.writer.committed().len(), 1);
        // A change that committed meanwhile wins: this one is refused, not decided on stale data.
        s.writer.refuse_next_commit(WriteError::Conflict);
        let conflict = run(s.change(
            &caller(&["1000001"]),
            &account("800000001"),
            Decimal::new(17000, 2),
            date!(2026 - 12 - 15),
            key("k-2", "fp-c"),
        ));
        assert!(matches!(conflict, Err(ChangeError::Conflict)), "{conflict:?}");
    }
}
