//! Bank details (capability 8, write side): change of payment method and of the account
//! for payments, a separate payout account for credits, and revocation of the SEPA
//! direct-debit mandate. Sensitive: confirmed by the current password (or a fresh
//! login), and the customer is told by e-mail.

use crate::changes::{self, ChangeError, Confirmation, Draft};
use crate::clock::Clock;
use crate::contact::Change;
use crate::entities::{BankAccount, BankDetails, PaymentMethod, SepaMandate};
use crate::identity::sessions::Caller;
use crate::identity::{LoginStore, LoginThrottle, Mailer};
use crate::ids::{AccountNumber, IdempotencyKey, RequestId};
use crate::ports::RequestWriter;
use crate::reads::{ScopedReads, mask_iban};
use crate::requests::{MirrorObject, RequestKind};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

/// An account as the customer typed it, before the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInput {
    pub holder: String,
    pub iban: String,
    pub bic: Option<String>,
}

/// ISO 9362: four letters (bank), two letters (country), two letters or digits
/// (location), optionally three letters or digits (branch).
pub fn bic_is_valid(bic: &str) -> bool {
    let b = bic.as_bytes();
    (b.len() == 8 || b.len() == 11)
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && b[6..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Checks an account: holder given, IBAN with the country's length and mod-97 check
/// digits (ISO 13616), BIC well-formed — and required unless the IBAN is German.
/// `pointer` names the account in the request for the answer's field errors.
pub fn checked_account(input: &AccountInput, pointer: &str) -> Result<BankAccount, ChangeError> {
    let holder = input.holder.split_whitespace().collect::<Vec<_>>().join(" ");
    if holder.is_empty() || holder.chars().count() > 70 {
        return Err(ChangeError::invalid(
            &format!("{pointer}/holder"),
            "HOLDER_REQUIRED",
            "the account holder is required (at most 70 characters)",
        ));
    }
    let iban: String = input.iban.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    if !crate::export::iban_is_valid(&iban) {
        return Err(ChangeError::invalid(
            &format!("{pointer}/iban"),
            "IBAN_INVALID",
            "the IBAN is not valid: check its length and check digits",
        ));
    }
    let bic = input.bic.as_deref().map(|b| b.trim().to_ascii_uppercase()).filter(|b| !b.is_empty());
    match &bic {
        Some(b) if !bic_is_valid(b) => {
            return Err(ChangeError::invalid(
                &format!("{pointer}/bic"),
                "BIC_INVALID",
                "the BIC has 8 or 11 characters: bank, country, location, optional branch",
            ));
        }
        None if !iban.starts_with("DE") => {
            return Err(ChangeError::invalid(
                &format!("{pointer}/bic"),
                "BIC_REQUIRED",
                "a BIC is required for an account outside Germany",
            ));
        }
        _ => {}
    }
    Ok(BankAccount { holder, iban, bic, bank_name: None })
}

/// A bank-details change as requested.
#[derive(Debug, Clone)]
pub struct BankChange {
    pub payment_method: PaymentMethod,
    pub bank_account: Option<AccountInput>,
    pub payout_account: Change<AccountInput>,
}

/// An account as the downstream message and the record carry it: in full, for the CRM.
fn account_json(a: &BankAccount) -> Value {
    json!({ "holder": a.holder, "iban": a.iban, "bic": a.bic })
}

pub struct BankDetailsService<R, W, G, H, M, C> {
    pub reads: R,
    pub writer: W,
    pub confirmation: Confirmation<G, H, C>,
    pub mailer: M,
    pub clock: C,
}

impl<R, W, G, H, M, C> BankDetailsService<R, W, G, H, M, C>
where
    R: ScopedReads,
    W: RequestWriter,
    G: LoginStore,
    H: LoginThrottle,
    M: Mailer,
    C: Clock,
{
    /// The caller's bank details of the account, the earlier answer for a retry, and the
    /// confirmation of the change — in that order, so that nothing about another
    /// customer's account is revealed.
    async fn prepare(
        &self,
        caller: &Caller,
        account: &AccountNumber,
        operation: &str,
        password: Option<&SecretString>,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Result<(BankDetails, Option<crate::requests::IdempotencyClaim>), Value>, ChangeError> {
        let claim = changes::claim(operation, account.as_str(), idempotency);
        let (earlier, details) =
            futures::join!(changes::stored(&self.writer, &claim), self.reads.bank_details(caller, account));
        let details = details?.ok_or(ChangeError::NotFound)?;
        if let Some(answer) = changes::replay(earlier?, &claim)? {
            return Ok(Err(answer));
        }
        self.confirmation.confirm(caller, password).await?;
        Ok(Ok((details, claim)))
    }

    async fn notify(&self, caller: &Caller, details: &BankDetails, what: &str) {
        let customer_email =
            self.reads.partner(caller, &details.partner_number).await.ok().flatten().and_then(|p| p.email);
        let email = self.confirmation.notice_address(caller, customer_email).await;
        let text = format!(
            "Guten Tag,\n\n{what} für Ihr Vertragskonto {} wurde soeben im Kundenportal geändert.\n\n\
             Wenn Sie das nicht selbst waren, ändern Sie bitte sofort Ihr Passwort und rufen Sie uns an.\n",
            details.account_number
        );
        changes::notify(&self.mailer, email.as_deref(), "Ihre Bankverbindung wurde geändert", text).await;
    }

    pub async fn change(
        &self,
        caller: &Caller,
        account: &AccountNumber,
        change: BankChange,
        password: Option<&SecretString>,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ChangeError> {
        let (current, claim) = match self.prepare(caller, account, "bank-details-change", password, idempotency).await?
        {
            Ok(prepared) => prepared,
            Err(answer) => return Ok(answer),
        };
        let new_account = change.bank_account.as_ref().map(|a| checked_account(a, "/bankAccount")).transpose()?;
        let payout = match &change.payout_account {
            Change::Keep => Change::Keep,
            Change::Clear => Change::Clear,
            Change::Set(a) => Change::Set(checked_account(a, "/payoutAccount")?),
        };
        let debit = change.payment_method == PaymentMethod::SepaDirectDebit;
        let paying_account = new_account.clone().or_else(|| current.bank_account.clone());
        if debit && paying_account.is_none() {
            return Err(ChangeError::invalid(
                "/bankAccount",
                "BANK_ACCOUNT_REQUIRED",
                "direct debit needs the account to debit",
            ));
        }
        let unchanged = change.payment_method == current.payment_method
            && new_account.as_ref().is_none_or(|a| Some(a) == current.bank_account.as_ref())
            && match &payout {
                Change::Keep => true,
                Change::Clear => current.payout_account.is_none(),
                Change::Set(a) => Some(a) == current.payout_account.as_ref(),
            };
        if unchanged {
            return Err(ChangeError::invalid("", "NOTHING_TO_CHANGE", "the request changes nothing"));
        }
        // Leaving direct debit ends the mandate.
        let mandate_revoked = !debit && current.payment_method == PaymentMethod::SepaDirectDebit;

        let request_id = RequestId::new_random();
        let mut set = Map::new();
        set.insert("paymentMethod".into(), json!(change.payment_method));
        if let Some(a) = &new_account {
            set.insert("bankAccount".into(), json!(a));
        }
        match &payout {
            Change::Keep => {}
            Change::Clear => {
                set.insert("payoutAccount".into(), Value::Null);
            }
            Change::Set(a) => {
                set.insert("payoutAccount".into(), json!(a));
            }
        }
        if mandate_revoked && let Some(m) = &current.mandate {
            set.insert("mandate".into(), json!(SepaMandate { status: "REVOKED".into(), ..m.clone() }));
        }
        let details = json!({
            "accountNumber": account,
            "paymentMethod": change.payment_method,
            "bankAccount": new_account.as_ref().or(paying_account.as_ref()).map(account_json),
            "payoutAccount": match &payout {
                Change::Set(a) => account_json(a),
                Change::Clear | Change::Keep => Value::Null,
            },
            "payoutAccountChanged": !matches!(payout, Change::Keep),
            "mandateRevoked": mandate_revoked,
        });
        let request = Draft {
            request_id,
            kind: RequestKind::BankDetailsChange,
            customer: current.partner_number.clone(),
            now: self.clock.now(),
            activity_type: "BANK_DETAILS_CHANGED",
            subject: format!("Bankverbindung Vertragskonto {account} im Kundenportal geändert"),
            details,
            mirror_updates: vec![changes::pending(
                MirrorObject::BankDetails(current.partner_number.clone(), account.clone()),
                "pendingChange",
                current.pending_change,
                json!(request_id),
                set,
            )],
            claim,
            answer: Map::from_iter([("accountNumber".to_owned(), json!(account))]),
        }
        .request();
        let answer = changes::commit(&self.writer, request).await?;
        let what = match (&new_account, &payout) {
            (Some(a), _) => format!("Die Bankverbindung (IBAN endet auf {})", last4(&a.iban)),
            (None, Change::Set(a)) => format!("Das Auszahlungskonto (IBAN endet auf {})", last4(&a.iban)),
            _ => "Die Zahlungsart".to_owned(),
        };
        self.notify(caller, &current, &what).await;
        Ok(answer)
    }

    /// Revokes the direct-debit mandate: the account is paid by transfer from then on.
    pub async fn revoke_mandate(
        &self,
        caller: &Caller,
        account: &AccountNumber,
        password: Option<&SecretString>,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ChangeError> {
        let (current, claim) = match self.prepare(caller, account, "mandate-revocation", password, idempotency).await? {
            Ok(prepared) => prepared,
            Err(answer) => return Ok(answer),
        };
        let mandate = current
            .mandate
            .as_ref()
            .filter(|m| m.status == "ACTIVE" && current.payment_method == PaymentMethod::SepaDirectDebit)
            .ok_or_else(|| ChangeError::not_possible("NO_ACTIVE_MANDATE", "the account has no active mandate"))?;
        let request_id = RequestId::new_random();
        let revoked = SepaMandate { status: "REVOKED".into(), ..mandate.clone() };
        let set = Map::from_iter([
            ("paymentMethod".to_owned(), json!(PaymentMethod::BankTransfer)),
            ("mandate".to_owned(), json!(revoked)),
        ]);
        let request = Draft {
            request_id,
            kind: RequestKind::MandateRevocation,
            customer: current.partner_number.clone(),
            now: self.clock.now(),
            activity_type: "DIRECT_DEBIT_MANDATE_REVOKED",
            subject: format!("SEPA-Mandat {} im Kundenportal widerrufen", mandate.reference),
            details: json!({
                "accountNumber": account,
                "mandateReference": mandate.reference,
                "paymentMethod": PaymentMethod::BankTransfer,
            }),
            mirror_updates: vec![changes::pending(
                MirrorObject::BankDetails(current.partner_number.clone(), account.clone()),
                "pendingChange",
                current.pending_change,
                json!(request_id),
                set,
            )],
            claim,
            answer: Map::from_iter([("accountNumber".to_owned(), json!(account))]),
        }
        .request();
        let answer = changes::commit(&self.writer, request).await?;
        self.notify(caller, &current, "Das SEPA-Lastschriftmandat").await;
        Ok(answer)
    }
}

fn last4(iban: &str) -> String {
    mask_iban(iban).chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(iban: &str, bic: Option<&str>) -> AccountInput {
        AccountInput { holder: " Jürgen   Müller ".into(), iban: iban.into(), bic: bic.map(Into::into) }
    }

    #[test]
    fn accounts_are_checked_by_iban_check_digits_and_bic_format() {
        let ok = checked_account(&input("de89 3704 0044 0532 0130 00", None), "/bankAccount").unwrap();
        assert_eq!((ok.holder.as_str(), ok.iban.as_str()), ("Jürgen Müller", "DE89370400440532013000"));
        let code = |i: AccountInput| match checked_account(&i, "/a") {
            Err(ChangeError::Invalid { code, pointer, .. }) => (code, pointer),
            other => panic!("{other:?}"),
        };
        assert_eq!(code(input("DE89370400440532013001", None)), ("IBAN_INVALID", "/a/iban".into()));
        assert_eq!(code(input("DE8937040044053201300", None)), ("IBAN_INVALID", "/a/iban".into()), "too short");
        assert_eq!(code(input("DE89370400440532013000", Some("COBA DE FF"))), ("BIC_INVALID", "/a/bic".into()));
        assert_eq!(code(input("AT611904300234573201", None)), ("BIC_REQUIRED", "/a/bic".into()));
        assert!(checked_account(&input("AT611904300234573201", Some("bkauatww")), "/a").is_ok());
        assert_eq!(
            code(AccountInput { holder: "  ".into(), iban: "DE89370400440532013000".into(), bic: None }),
            ("HOLDER_REQUIRED", "/a/holder".into())
        );
        assert!(bic_is_valid("COBADEFFXXX") && bic_is_valid("COBADEFF") && !bic_is_valid("COBADEF"));
    }
}
