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
        if plan.change_locked {
            let reason = plan.change_locked_reason.unwrap_or_else(|| "LOCKED".to_owned());
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
            }],
            claim,
            answer: Map::from_iter([("accountNumber".to_owned(), json!(account))]),
        }
        .request();
        request.activities.extend(installations.into_iter().map(|i| Activity {
            owner: ActivityOwner::Installation(i),
            activity_type: "INSTALLMENT_CHANGE_REQUESTED",
            subject: subject.clone(),
        }));
        changes::commit(&self.writer, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn bounds_dates_and_due_days() {
        let p = InstallmentPolicy::default();
        let today = date!(2026 - 12 - 01);
        let check = |amount: i64, from: Date| match check_change(
            &p,
            Decimal::new(6100, 2),
            15,
            Decimal::new(amount, 2),
            from,
            today,
        ) {
            Ok(()) => "OK",
            Err(ChangeError::Invalid { code, .. }) => code,
            Err(e) => panic!("{e:?}"),
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
}
