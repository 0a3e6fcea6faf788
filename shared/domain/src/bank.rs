//! Bank details (capability 8, write side): change of payment method and of the account
//! for payments, a separate payout account for credits, and revocation of the SEPA
//! direct-debit mandate. Sensitive: confirmed by the current password (or a fresh
//! login), and the customer is told by e-mail.

use crate::changes::{self, ChangeError, Confirmation, Draft};
use crate::clock::Clock;
use crate::contact::Change;
use crate::entities::{BankAccount, BankDetails, MandateRequest, PaymentMethod, SepaMandate};
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

/// Countries of the European Economic Area (EU, Iceland, Liechtenstein, Norway): for their
/// IBANs the SEPA rules need no BIC ("IBAN only").
const EEA: [&str; 30] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS", "IT", "LI", "LT",
    "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// Checks an account: holder given, IBAN with the country's length and mod-97 check
/// digits (ISO 13616), BIC well-formed — and required for an IBAN from outside the EEA
/// (SEPA countries such as Switzerland or the United Kingdom), optional within it.
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
        None if !EEA.contains(&&iban[..2]) => {
            return Err(ChangeError::invalid(
                &format!("{pointer}/bic"),
                "BIC_REQUIRED",
                "a BIC is required for an account outside the European Economic Area",
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
    /// The version of the SEPA mandate text the customer accepted (`sepaMandateAccepted`),
    /// needed to debit a new account.
    pub sepa_mandate: Option<String>,
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
        let to = self.confirmation.notice_addresses(caller, customer_email).await;
        let text = format!(
            "Guten Tag,\n\n{what} für Ihr Vertragskonto {} wurde soeben im Kundenportal geändert.\n\n\
             Wenn Sie das nicht selbst waren, ändern Sie bitte sofort Ihr Passwort und rufen Sie uns an.\n",
            details.account_number
        );
        changes::notify(&self.mailer, &to, "Ihre Bankverbindung wurde geändert", text).await;
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
            && new_account.as_ref().is_none_or(|a| same_account(a, current.bank_account.as_ref()))
            && match &payout {
                Change::Keep => true,
                Change::Clear => current.payout_account.is_none(),
                Change::Set(a) => same_account(a, current.payout_account.as_ref()),
            };
        if unchanged {
            return Err(ChangeError::invalid("", "NOTHING_TO_CHANGE", "the request changes nothing"));
        }
        // Debiting an account the CRM holds no mandate for (a switch to direct debit, or
        // another IBAN) needs the customer's mandate; a payout-only change does not.
        let debits_new_account = debit
            && (current.payment_method != PaymentMethod::SepaDirectDebit
                || new_account
                    .as_ref()
                    .is_some_and(|a| current.bank_account.as_ref().is_none_or(|c| c.iban != a.iban)));
        let now = self.clock.now();
        let mandate_request = match (&change.sepa_mandate, debits_new_account) {
            (_, false) => None,
            (Some(version), true) => Some(MandateRequest { text_version: version.clone(), accepted_at: now }),
            (None, true) => {
                return Err(ChangeError::invalid(
                    "/sepaMandateAccepted",
                    "SEPA_MANDATE_REQUIRED",
                    "debiting a new account needs the customer's SEPA mandate: show the mandate text and send \
                     sepaMandateAccepted with its version (sepaMandateTextVersion)",
                ));
            }
        };
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
        if let Some(request) = &mandate_request {
            set.insert("mandateRequest".into(), json!(request));
            // The mandate on file is shown as being replaced until the CRM confirms the new one.
            if let Some(m) = current.mandate.as_ref().filter(|m| m.status == "ACTIVE") {
                set.insert("mandate".into(), json!(SepaMandate { status: "BEING_REPLACED".into(), ..m.clone() }));
            }
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
            // The new mandate for the CRM to register (it assigns the reference).
            "mandateRequest": mandate_request,
        });
        let request = Draft {
            request_id,
            kind: RequestKind::BankDetailsChange,
            customer: current.partner_number.clone(),
            now,
            activity_type: "BANK_DETAILS_CHANGED",
            subject: format!("Bankverbindung Vertragskonto {account} im Kundenportal geändert"),
            details,
            mirror_updates: vec![changes::pending(
                MirrorObject::BankDetails(current.partner_number.clone(), account.clone()),
                "pendingChange",
                current.pending_change,
                json!(request_id),
                set,
                &json!(current),
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
                &json!(current),
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

/// Whether a typed account is the one on file: holder, IBAN and BIC (the bank's name on
/// file comes from the CRM, a typed account has none).
fn same_account(typed: &BankAccount, on_file: Option<&BankAccount>) -> bool {
    on_file.is_some_and(|f| typed.holder == f.holder && typed.iban == f.iban && typed.bic == f.bic)
}

fn last4(iban: &str) -> String {
    mask_iban(iban).chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::export::MirrorSnapshot;
    use crate::memory::{MemoryDirectory, MemoryLogins, MemoryMailer, MemoryThrottle, MemoryWriter};
    use crate::requests::MirrorUpdate;
    use crate::testkit::{NOW, caller, caller_at, confirmation, customer, demo, key, password, run};

    fn input(iban: &str, bic: Option<&str>) -> AccountInput {
        AccountInput { holder: " Jürgen   Müller ".into(), iban: iban.into(), bic: bic.map(Into::into) }
    }

    fn refusal(r: Result<BankAccount, ChangeError>) -> (&'static str, String) {
        match r {
            Err(ChangeError::Invalid { code, pointer, .. }) => (code, pointer),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accounts_are_checked_by_iban_check_digits_and_bic_format() {
        let ok = checked_account(&input("de89 3704 0044 0532 0130 00", None), "/bankAccount").unwrap();
        assert_eq!((ok.holder.as_str(), ok.iban.as_str()), ("Jürgen Müller", "DE89370400440532013000"));
        let code = |i: AccountInput| refusal(checked_account(&i, "/a"));
        assert_eq!(code(input("DE89370400440532013001", None)), ("IBAN_INVALID", "/a/iban".into()));
        assert_eq!(code(input("DE8937040044053201300", None)), ("IBAN_INVALID", "/a/iban".into()), "too short");
        assert_eq!(code(input("DE89370400440532013000", Some("COBA DE FF"))), ("BIC_INVALID", "/a/bic".into()));
        // IBAN only within the EEA; outside it (Switzerland, the United Kingdom) a BIC is needed.
        for eea in ["AT611904300234573201", "NL91ABNA0417164300", "FR1420041010050500013M02606"] {
            assert_eq!(checked_account(&input(eea, None), "/a").unwrap().bic, None, "{eea}");
        }
        assert_eq!(code(input("CH9300762011623852957", None)), ("BIC_REQUIRED", "/a/bic".into()));
        assert_eq!(code(input("GB29NWBK60161331926819", Some("  "))), ("BIC_REQUIRED", "/a/bic".into()), "blank");
        assert!(checked_account(&input("CH9300762011623852957", Some("UBSWCHZH80A")), "/a").is_ok());
        let at = checked_account(&input("AT611904300234573201", Some(" bkauatww ")), "/a").unwrap();
        assert_eq!(at.bic.as_deref(), Some("BKAUATWW"));
        assert_eq!(at.bank_name, None);
        assert_eq!(checked_account(&input("DE89370400440532013000", Some("  ")), "/a").unwrap().bic, None);
        assert_eq!(
            code(AccountInput { holder: "  ".into(), iban: "DE89370400440532013000".into(), bic: None }),
            ("HOLDER_REQUIRED", "/a/holder".into())
        );
    }

    #[test]
    fn a_holder_has_at_most_70_characters() {
        let holder = |h: String| AccountInput { holder: h, iban: "DE89370400440532013000".into(), bic: None };
        assert_eq!(checked_account(&holder("ü".repeat(70)), "/a").unwrap().holder.chars().count(), 70);
        assert_eq!(refusal(checked_account(&holder("ü".repeat(71)), "/a")), ("HOLDER_REQUIRED", "/a/holder".into()));
        // Counted after the spaces are tidied.
        assert!(checked_account(&holder(format!("  {}   {}  ", "a".repeat(30), "b".repeat(39))), "/a").is_ok());
    }

    #[test]
    fn bics_have_bank_country_location_and_an_optional_branch() {
        for ok in ["COBADEFF", "COBADEFFXXX", "OSDDDE81", "OSDDDE81XXX", "COBADEFF123"] {
            assert!(bic_is_valid(ok), "{ok}");
        }
        for bad in [
            "COBADEF",
            "COBADEFFX",
            "COBADEFFXX",
            "COBADEFFXXXX",
            "cobadeff",
            "COBAD1FF",
            "COBADEfF",
            "COBADEFFxxx",
            "COBADE-F",
        ] {
            assert!(!bic_is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_last_four_characters_of_an_iban_are_told() {
        assert_eq!(last4("DE89370400440532013000"), "3000");
        assert_eq!(last4("DE8"), "DE8");
    }

    type Service =
        BankDetailsService<MemoryDirectory, MemoryWriter, MemoryLogins, MemoryThrottle, MemoryMailer, FixedClock>;

    fn service_with(snapshot: MirrorSnapshot, customers: &[&str]) -> Service {
        BankDetailsService {
            reads: MemoryDirectory::new(snapshot),
            writer: MemoryWriter::default(),
            confirmation: confirmation(customers),
            mailer: MemoryMailer::default(),
            clock: FixedClock(NOW),
        }
    }

    fn service(customers: &[&str]) -> Service {
        service_with(demo(), customers)
    }

    fn account(n: &str) -> AccountNumber {
        AccountNumber::parse(n).unwrap()
    }

    fn change(method: PaymentMethod, bank: Option<AccountInput>, payout: Change<AccountInput>) -> BankChange {
        BankChange { payment_method: method, bank_account: bank, payout_account: payout, sepa_mandate: None }
    }

    /// A change with the customer's consent to the mandate text of version 2026-01.
    fn with_mandate(change: BankChange) -> BankChange {
        BankChange { sepa_mandate: Some("2026-01".into()), ..change }
    }

    fn new_account() -> AccountInput {
        AccountInput { holder: "Erika Mustermann".into(), iban: "DE02120300000000202051".into(), bic: None }
    }

    /// Erika's account in the demo: direct debit from DE89…3000 with an active mandate.
    fn erika_current() -> AccountInput {
        AccountInput {
            holder: "Erika Mustermann".into(),
            iban: "DE89370400440532013000".into(),
            bic: Some("COBADEFFXXX".into()),
        }
    }

    fn code(r: Result<Value, ChangeError>) -> &'static str {
        match r {
            Err(ChangeError::Invalid { code, .. } | ChangeError::NotPossible { code, .. }) => code,
            other => panic!("{other:?}"),
        }
    }

    fn pending(r: &crate::requests::CustomerRequest) -> (&MirrorObject, &Map<String, Value>, &Map<String, Value>) {
        match r.mirror_updates.as_slice() {
            [MirrorUpdate::Pending { object, set, expect, .. }] => (object, set, expect),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn leaving_direct_debit_revokes_the_mandate_and_tells_the_login() {
        let s = service(&["1000001"]);
        let c = caller(&["1000001"]);
        let answer = run(s.change(
            &c,
            &account("800000001"),
            change(PaymentMethod::BankTransfer, None, Change::Keep),
            Some(&password()),
            None,
        ))
        .unwrap();
        let committed = s.writer.committed();
        let r = &committed[0];
        assert_eq!(
            (answer["accountNumber"].as_str(), answer["requestId"].clone()),
            (Some("800000001"), json!(r.request_id))
        );
        assert_eq!(r.kind, RequestKind::BankDetailsChange);
        assert_eq!(r.activities[0].activity_type, "BANK_DETAILS_CHANGED");
        assert_eq!(r.record["paymentMethod"], "BANK_TRANSFER");
        assert_eq!(r.record["mandateRevoked"], true);
        assert_eq!(r.record["payoutAccountChanged"], false);
        assert_eq!(r.record["payoutAccount"], Value::Null);
        // The account paid from so far, in full for the CRM.
        assert_eq!(
            r.record["bankAccount"],
            json!({"holder": "Erika Mustermann", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"})
        );
        let (object, set, expect) = pending(r);
        assert_eq!(*object, MirrorObject::BankDetails(customer("1000001"), account("800000001")));
        assert_eq!(set["paymentMethod"], "BANK_TRANSFER");
        assert_eq!(set["mandate"]["status"], "REVOKED");
        assert_eq!(set["mandate"]["reference"], "EVI-800000001-01");
        assert_eq!(set["pendingChange"], json!(r.request_id));
        assert!(!set.contains_key("bankAccount") && !set.contains_key("payoutAccount"));
        assert_eq!(expect["pendingChange"], Value::Null);
        // Told to the login's address and to the CRM's for the customer.
        let subject = "Ihre Bankverbindung wurde geändert".to_owned();
        assert_eq!(
            s.mailer.sent(),
            [("login@example.org".to_owned(), subject.clone()), ("erika.mustermann@example.org".to_owned(), subject)]
        );
        assert!(
            s.mailer.texts()[0].contains("Die Zahlungsart für Ihr Vertragskonto 800000001"),
            "{:?}",
            s.mailer.texts()
        );
    }

    #[test]
    fn a_new_account_to_debit_needs_the_customers_mandate_and_the_old_one_is_being_replaced() {
        let s = service(&["1000001"]);
        let go = |change| run(s.change(&caller(&["1000001"]), &account("800000001"), change, Some(&password()), None));
        let new_iban = || change(PaymentMethod::SepaDirectDebit, Some(new_account()), Change::Keep);
        let refused = go(new_iban());
        assert_eq!(code(refused), "SEPA_MANDATE_REQUIRED");
        assert!(s.writer.committed().is_empty());
        go(with_mandate(new_iban())).unwrap();
        let committed = s.writer.committed();
        let r = &committed[0];
        assert_eq!(r.record["mandateRevoked"], false);
        assert_eq!(r.record["bankAccount"]["iban"], "DE02120300000000202051");
        assert_eq!(
            r.record["mandateRequest"],
            json!({"textVersion": "2026-01", "acceptedAt": "2026-12-01T09:00:00.000Z"}),
            "for the CRM to register; it assigns the reference"
        );
        let (_, set, _) = pending(r);
        assert_eq!(set["bankAccount"]["iban"], "DE02120300000000202051");
        assert_eq!(set["mandateRequest"], r.record["mandateRequest"]);
        assert_eq!(
            (set["mandate"]["status"].as_str(), set["mandate"]["reference"].as_str()),
            (Some("BEING_REPLACED"), Some("EVI-800000001-01"))
        );
        assert!(s.mailer.texts()[0].contains("Die Bankverbindung (IBAN endet auf 2051)"));
        // The IBAN already debited, or a payout account, needs no new mandate.
        let same_iban = AccountInput { holder: "Max Mustermann".into(), ..erika_current() };
        let r = go(change(PaymentMethod::SepaDirectDebit, Some(same_iban), Change::Keep));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(s.writer.committed()[1].record["mandateRequest"], Value::Null);
    }

    #[test]
    fn a_payout_account_is_set_or_cleared_on_its_own() {
        // Jürgen pays by transfer and has a payout account.
        let s = service(&["1000002"]);
        let c = caller(&["1000002"]);
        let payout = AccountInput { holder: "Jürgen".into(), iban: "DE02120300000000202051".into(), bic: None };
        run(s.change(
            &c,
            &account("800000002"),
            change(PaymentMethod::BankTransfer, None, Change::Set(payout)),
            Some(&password()),
            key("k-set", "a"),
        ))
        .unwrap();
        run(s.change(
            &c,
            &account("800000002"),
            change(PaymentMethod::BankTransfer, None, Change::Clear),
            Some(&password()),
            key("k-clear", "b"),
        ))
        .unwrap();
        let committed = s.writer.committed();
        let (set_payout, clear) = (&committed[0], &committed[1]);
        assert_eq!(set_payout.record["payoutAccount"]["iban"], "DE02120300000000202051");
        assert_eq!(set_payout.record["payoutAccountChanged"], true);
        assert_eq!(set_payout.record["bankAccount"], Value::Null);
        assert_eq!(set_payout.record["mandateRevoked"], false);
        assert_eq!(pending(set_payout).1["payoutAccount"]["iban"], "DE02120300000000202051");
        assert_eq!(clear.record["payoutAccount"], Value::Null);
        assert_eq!(clear.record["payoutAccountChanged"], true);
        assert_eq!(pending(clear).1["payoutAccount"], Value::Null);
        assert!(pending(clear).1.contains_key("payoutAccount"));
        let texts = s.mailer.texts();
        assert!(texts[0].contains("Das Auszahlungskonto (IBAN endet auf 2051)"), "{texts:?}");
        assert!(texts[2].contains("Die Zahlungsart"), "{texts:?} (two addresses each)");
    }

    #[test]
    fn direct_debit_needs_an_account_and_a_change_must_change_something() {
        // Klaus pays by transfer and has no account on file.
        let s = service(&["1000004"]);
        let c = caller(&["1000004"]);
        let klaus = |m, bank, payout| {
            run(s.change(&c, &account("800000005"), change(m, bank, payout), Some(&password()), None))
        };
        assert_eq!(code(klaus(PaymentMethod::SepaDirectDebit, None, Change::Keep)), "BANK_ACCOUNT_REQUIRED");
        assert_eq!(code(klaus(PaymentMethod::BankTransfer, None, Change::Keep)), "NOTHING_TO_CHANGE");
        assert_eq!(
            code(klaus(PaymentMethod::BankTransfer, None, Change::Clear)),
            "NOTHING_TO_CHANGE",
            "nothing to clear"
        );
        let bad = AccountInput { iban: "DE02120300000000202052".into(), ..new_account() };
        assert_eq!(code(klaus(PaymentMethod::BankTransfer, Some(bad.clone()), Change::Keep)), "IBAN_INVALID");
        let Err(ChangeError::Invalid { pointer, .. }) = klaus(PaymentMethod::BankTransfer, None, Change::Set(bad))
        else {
            panic!()
        };
        assert_eq!(pointer, "/payoutAccount/iban");
        assert!(s.writer.committed().is_empty());
        // With the account given, direct debit is a change that needs the mandate; nothing to revoke.
        assert_eq!(
            code(klaus(PaymentMethod::SepaDirectDebit, Some(new_account()), Change::Keep)),
            "SEPA_MANDATE_REQUIRED"
        );
        run(s.change(
            &c,
            &account("800000005"),
            with_mandate(change(PaymentMethod::SepaDirectDebit, Some(new_account()), Change::Keep)),
            Some(&password()),
            None,
        ))
        .unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.record["mandateRevoked"], false);
        assert_eq!(r.record["paymentMethod"], "SEPA_DIRECT_DEBIT");

        // Erika: the same method with the account she already pays from changes nothing.
        let s = service(&["1000001"]);
        let erika = |m, bank, payout| {
            run(s.change(
                &caller(&["1000001"]),
                &account("800000001"),
                change(m, bank, payout),
                Some(&password()),
                None,
            ))
        };
        assert_eq!(code(erika(PaymentMethod::SepaDirectDebit, None, Change::Keep)), "NOTHING_TO_CHANGE");
        assert_eq!(
            code(erika(PaymentMethod::SepaDirectDebit, Some(erika_current()), Change::Keep)),
            "NOTHING_TO_CHANGE"
        );
        // Another holder or another BIC of the same IBAN is a change.
        let other_holder = AccountInput { holder: "Max Mustermann".into(), ..erika_current() };
        erika(PaymentMethod::SepaDirectDebit, Some(other_holder), Change::Keep).unwrap();
        let other_bic = AccountInput { bic: None, ..erika_current() };
        erika(PaymentMethod::SepaDirectDebit, Some(other_bic), Change::Keep).unwrap();
        assert_eq!(s.writer.committed().len(), 2);
        // The same payout account as on file neither.
        let s = service(&["1000002"]);
        let same_payout = AccountInput {
            holder: "Jürgen Müller-Lüdenscheidt".into(),
            iban: "DE64850503003120123456".into(),
            bic: Some("OSDDDE81XXX".into()),
        };
        let r = run(s.change(
            &caller(&["1000002"]),
            &account("800000002"),
            change(PaymentMethod::BankTransfer, None, Change::Set(same_payout)),
            Some(&password()),
            None,
        ));
        assert_eq!(code(r), "NOTHING_TO_CHANGE");
        // Direct debit from the payout account is a change of the method.
        let r = run(s.change(
            &caller(&["1000002"]),
            &account("800000002"),
            change(PaymentMethod::SepaDirectDebit, None, Change::Keep),
            Some(&password()),
            None,
        ));
        assert_eq!(code(r), "BANK_ACCOUNT_REQUIRED");
    }

    #[test]
    fn a_sensitive_change_is_confirmed_after_the_ownership_check() {
        let s = service(&["1000001"]);
        let transfer = || change(PaymentMethod::BankTransfer, None, Change::Keep);
        // Another customer's account: not found, whatever the password.
        let r = run(s.change(&caller(&["1000001"]), &account("800000002"), transfer(), None, None));
        assert!(matches!(r, Err(ChangeError::NotFound)), "{r:?}");
        let r = run(s.change(&caller(&["1000001"]), &account("800000001"), transfer(), None, None));
        assert!(matches!(r, Err(ChangeError::ReauthenticationRequired)), "{r:?}");
        let wrong = secrecy::SecretString::from("Falsch-2026!");
        let r = run(s.change(&caller(&["1000001"]), &account("800000001"), transfer(), Some(&wrong), None));
        assert!(matches!(r, Err(ChangeError::CurrentPasswordWrong)), "{r:?}");
        assert!(s.writer.committed().is_empty() && s.mailer.sent().is_empty());
        // Signed in a minute ago: no password needed.
        let fresh = caller_at(&["1000001"], NOW - time::Duration::minutes(1));
        run(s.change(&fresh, &account("800000001"), transfer(), None, None)).unwrap();
        assert_eq!(s.writer.committed().len(), 1);
    }

    #[test]
    fn a_retry_replays_the_first_answer_without_a_second_change_or_mail() {
        let s = service(&["1000001"]);
        let c = caller(&["1000001"]);
        let transfer = || change(PaymentMethod::BankTransfer, None, Change::Keep);
        let first = run(s.change(&c, &account("800000001"), transfer(), Some(&password()), key("k", "fp"))).unwrap();
        let again = run(s.change(&c, &account("800000001"), transfer(), None, key("k", "fp"))).unwrap();
        assert_eq!(first, again);
        let other = run(s.change(&c, &account("800000001"), transfer(), None, key("k", "other")));
        assert!(matches!(other, Err(ChangeError::IdempotencyKeyReused)), "{other:?}");
        assert_eq!((s.writer.committed().len(), s.mailer.sent().len()), (1, 2), "one change, told to two addresses");
        let revoke = run(s.revoke_mandate(&c, &account("800000001"), None, key("k2", "fp")));
        assert!(matches!(revoke, Err(ChangeError::ReauthenticationRequired)), "{revoke:?}");
    }

    #[test]
    fn a_session_without_a_stored_login_is_told_at_the_customers_address() {
        let mut s = service(&["1000001"]);
        s.confirmation.logins = MemoryLogins::default();
        let fresh = caller_at(&["1000001"], NOW);
        run(s.change(
            &fresh,
            &account("800000001"),
            change(PaymentMethod::BankTransfer, None, Change::Keep),
            None,
            None,
        ))
        .unwrap();
        assert_eq!(s.mailer.sent()[0].0, "erika.mustermann@example.org");
    }

    #[test]
    fn revoking_the_mandate_switches_to_transfer() {
        let s = service(&["1000001"]);
        let c = caller(&["1000001"]);
        let answer = run(s.revoke_mandate(&c, &account("800000001"), Some(&password()), None)).unwrap();
        let committed = s.writer.committed();
        let r = &committed[0];
        assert_eq!(answer["accountNumber"], "800000001");
        assert_eq!(answer["requestId"], json!(r.request_id));
        assert_eq!(r.kind, RequestKind::MandateRevocation);
        assert_eq!(r.activities[0].activity_type, "DIRECT_DEBIT_MANDATE_REVOKED");
        assert_eq!(r.activities[0].subject, "SEPA-Mandat EVI-800000001-01 im Kundenportal widerrufen");
        assert_eq!(r.record["mandateReference"], "EVI-800000001-01");
        assert_eq!(r.record["paymentMethod"], "BANK_TRANSFER");
        let (object, set, expect) = pending(r);
        assert_eq!(*object, MirrorObject::BankDetails(customer("1000001"), account("800000001")));
        assert_eq!(
            (set["paymentMethod"].as_str(), set["mandate"]["status"].as_str()),
            (Some("BANK_TRANSFER"), Some("REVOKED"))
        );
        assert_eq!(set["mandate"]["creditorId"], "DE98ZZZ09999999999");
        assert_eq!(expect["pendingChange"], Value::Null);
        assert!(s.mailer.texts()[0].contains("Das SEPA-Lastschriftmandat für Ihr Vertragskonto 800000001"));
    }

    #[test]
    fn only_an_active_mandate_of_a_direct_debit_can_be_revoked() {
        let mut snapshot = demo();
        // Petra's mandate is no longer active; Bäckerei Schmidt pays by transfer despite an active one.
        snapshot.bank_details[5].mandate.as_mut().unwrap().status = "REVOKED".into();
        snapshot.bank_details[3].payment_method = PaymentMethod::BankTransfer;
        let s = service_with(snapshot, &["1000002", "1000003", "1000004", "1000005"]);
        let c = caller(&["1000002", "1000003", "1000004", "1000005"]);
        for (n, what) in [("800000002", "no mandate"), ("800000006", "revoked"), ("800000004", "transfer")] {
            assert_eq!(
                code(run(s.revoke_mandate(&c, &account(n), Some(&password()), None))),
                "NO_ACTIVE_MANDATE",
                "{what}"
            );
        }
        assert!(s.writer.committed().is_empty());
        let r = run(s.revoke_mandate(&c, &account("800000001"), Some(&password()), None));
        assert!(matches!(r, Err(ChangeError::NotFound)), "{r:?}");
        // The answer of a retry comes before the mandate is looked at again.
        run(s.revoke_mandate(&c, &account("800000003"), Some(&password()), key("r", "fp"))).unwrap();
        assert_eq!(s.writer.committed().len(), 1);
    }
}
