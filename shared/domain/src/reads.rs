//! What a logged-in customer sees (read side of capabilities 4, 5, 7, 8 and 11), with
//! object-level authorization in one place: every read takes the [`Caller`] and returns
//! only objects of the caller's own customer numbers. The mirror's keys begin with the
//! customer number, so the read *is* the check: another customer's object is simply not
//! found, exactly like an unknown one.

use crate::entities::{
    Address, BankAccount, BankDetails, BillRecipient, BusinessPartner, CodeValue, Contract, ContractAccountRecord,
    Document, InstallmentPlan, InstallmentStatus, MeterReading, MeterRecord, PartnerType, PaymentMethod,
    PendingInstallmentChange, PendingTermination, Product, iso_date,
};
use crate::export::Owned;
use crate::identity::sessions::Caller;
use crate::ids::{AccountNumber, ContractNumber, CustomerNumber, DocumentId, MeterNumber, RequestId};
use crate::ports::StoreError;
use rust_decimal::Decimal;
use serde::Serialize;
use std::future::Future;
use time::{Date, Month};

/// Reads of the caller's own objects. Implementations must look objects up only under the
/// caller's customer numbers.
pub trait ScopedReads: Send + Sync {
    fn partner(
        &self,
        caller: &Caller,
        customer: &CustomerNumber,
    ) -> impl Future<Output = Result<Option<BusinessPartner>, StoreError>> + Send;
    fn account(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> impl Future<Output = Result<Option<ContractAccountRecord>, StoreError>> + Send;
    /// An account with its contracts, or `None` if the account is not the caller's.
    fn account_contracts(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> impl Future<Output = Result<Option<(ContractAccountRecord, Vec<Contract>)>, StoreError>> + Send;
    fn contract(
        &self,
        caller: &Caller,
        contract: &ContractNumber,
    ) -> impl Future<Output = Result<Option<Contract>, StoreError>> + Send;
    fn bank_details(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> impl Future<Output = Result<Option<BankDetails>, StoreError>> + Send;
    fn installment_plan(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> impl Future<Output = Result<Option<Owned<InstallmentPlan>>, StoreError>> + Send;
    /// The documents of all the caller's customer numbers.
    fn documents(&self, caller: &Caller) -> impl Future<Output = Result<Vec<Document>, StoreError>> + Send;
    /// A document and its file, if the document is the caller's.
    fn document_file(
        &self,
        caller: &Caller,
        document: &DocumentId,
    ) -> impl Future<Output = Result<Option<(Document, Vec<u8>)>, StoreError>> + Send;
    /// The meters of all the caller's customer numbers (without reading history).
    fn meters(&self, caller: &Caller) -> impl Future<Output = Result<Vec<MeterRecord>, StoreError>> + Send;
    /// A meter with its reading history, if the meter is the caller's.
    fn meter_readings(
        &self,
        caller: &Caller,
        meter: &MeterNumber,
    ) -> impl Future<Output = Result<Option<(MeterRecord, Vec<MeterReading>)>, StoreError>> + Send;
}

/// The public catalogue: products and code lists (Schlüsselabruf).
pub trait Catalog: Send + Sync {
    fn products(&self) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;
    fn code_list(&self, name: &str) -> impl Future<Output = Result<Vec<CodeValue>, StoreError>> + Send;
}

/// Customer data (capability 4).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    pub customer_number: CustomerNumber,
    pub partner_type: PartnerType,
    pub salutation: Option<String>,
    pub title: Option<String>,
    pub first_name: Option<String>,
    pub last_name: String,
    pub address: Address,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub fax: Option<String>,
    pub email: Option<String>,
    pub notification_consent: bool,
    /// A contact-data change not yet confirmed by the CRM (the values above include it).
    pub pending_contact_change: Option<crate::ids::RequestId>,
    /// A requested change of name or address not yet confirmed by the CRM (the values
    /// above do not include it).
    pub pending_data_change: Option<crate::entities::PendingDataChange>,
}

impl From<BusinessPartner> for CustomerView {
    fn from(p: BusinessPartner) -> Self {
        Self {
            customer_number: p.partner_number,
            partner_type: p.partner_type,
            salutation: p.salutation,
            title: p.title,
            first_name: p.first_name,
            last_name: p.last_name,
            address: p.address,
            phone: p.phone,
            mobile: p.mobile,
            fax: p.fax,
            email: p.email,
            notification_consent: p.notification_consent,
            pending_contact_change: p.pending_contact_change,
            pending_data_change: p.pending_data_change,
        }
    }
}

/// Contract details (capability 5).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractView {
    pub contract_number: ContractNumber,
    pub account_number: AccountNumber,
    pub product_id: crate::ids::ProductId,
    #[serde(with = "iso_date")]
    pub start_date: Date,
    #[serde(with = "iso_date::option")]
    pub end_date: Option<Date>,
    pub installation_id: crate::ids::InstallationId,
    pub malo_id: crate::ids::MaloId,
    pub consumption_point: Address,
    /// A termination the customer submitted that the CRM has not processed yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_termination: Option<PendingTermination>,
}

impl From<Contract> for ContractView {
    fn from(c: Contract) -> Self {
        Self {
            contract_number: c.contract_number,
            account_number: c.account_number,
            product_id: c.product_id,
            start_date: c.start_date,
            end_date: c.end_date,
            installation_id: c.installation_id,
            malo_id: c.consumption_point.malo_id,
            consumption_point: c.consumption_point.address,
            pending_termination: c.pending_termination,
        }
    }
}

/// A contract account with its contracts (shown as `C`: plain, or with meters on the dashboard).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountContractsView<C = ContractView> {
    pub account_number: AccountNumber,
    pub billing_address: Address,
    pub bill_recipient: Option<BillRecipient>,
    /// A billing-address change not yet confirmed by the CRM (the values above show it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<RequestId>,
    pub contracts: Vec<C>,
}

impl<C> AccountContractsView<C> {
    pub fn new(account: ContractAccountRecord, contracts: Vec<C>) -> Self {
        Self {
            account_number: account.account_number,
            billing_address: account.billing_address,
            bill_recipient: account.bill_recipient,
            pending_change: account.pending_change,
            contracts,
        }
    }
}

/// A bank account with its IBAN masked to the last four characters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaskedBankAccount {
    pub holder: String,
    pub iban: String,
    pub bic: Option<String>,
    pub bank_name: Option<String>,
}

/// `DE89370400440532013000` → `******************3000`.
pub fn mask_iban(iban: &str) -> String {
    let compact: Vec<char> = iban.chars().filter(|c| !c.is_whitespace()).collect();
    let keep = compact.len().saturating_sub(4);
    compact.iter().enumerate().map(|(i, c)| if i < keep { '*' } else { *c }).collect()
}

impl From<BankAccount> for MaskedBankAccount {
    fn from(a: BankAccount) -> Self {
        Self { holder: a.holder, iban: mask_iban(&a.iban), bic: a.bic, bank_name: a.bank_name }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MandateView {
    pub reference: String,
    pub status: String,
    #[serde(with = "iso_date")]
    pub signed_on: Date,
}

/// Bank details (capability 8).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BankDetailsView {
    pub account_number: AccountNumber,
    pub payment_method: PaymentMethod,
    pub bank_account: Option<MaskedBankAccount>,
    pub payout_account: Option<MaskedBankAccount>,
    pub mandate: Option<MandateView>,
    /// A change not yet confirmed by the CRM (the values above show it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<RequestId>,
    /// The mandate the customer granted in the portal, until the CRM confirms it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mandate_request: Option<crate::entities::MandateRequest>,
}

impl From<BankDetails> for BankDetailsView {
    fn from(b: BankDetails) -> Self {
        Self {
            account_number: b.account_number,
            payment_method: b.payment_method,
            bank_account: b.bank_account.map(Into::into),
            payout_account: b.payout_account.map(Into::into),
            mandate: b.mandate.map(|m| MandateView {
                reference: m.reference,
                status: m.status,
                signed_on: m.signed_on,
            }),
            pending_change: b.pending_change,
            mandate_request: b.mandate_request,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallmentView {
    #[serde(with = "iso_date")]
    pub due_date: Date,
    pub amount: Decimal,
    pub status: InstallmentStatus,
}

/// Installment plan (capability 7), with whether a change is possible now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallmentPlanView {
    pub account_number: AccountNumber,
    pub amount: Decimal,
    pub currency: String,
    pub due_day: u8,
    #[serde(with = "iso_date")]
    pub valid_from: Date,
    /// Sum of the plan's installments.
    pub sum: Decimal,
    #[serde(with = "iso_date")]
    pub next_due_date: Date,
    pub change_possible: bool,
    /// Why a change is not possible now (a code), if it is not.
    pub change_refused_reason: Option<String>,
    pub installments: Vec<InstallmentView>,
    /// A change the customer requested that the CRM has not processed yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingInstallmentChange>,
}

/// The first day on or after `from` that is the plan's due day (the month's last day
/// where the month is shorter).
pub fn next_due_date(from: Date, due_day: u8) -> Date {
    let (mut year, mut month) = (from.year(), from.month());
    loop {
        let day = due_day.clamp(1, month.length(year));
        if let Ok(date) = Date::from_calendar_date(year, month, day)
            && date >= from
        {
            return date;
        }
        if month == Month::December {
            year += 1;
        }
        month = month.next();
    }
}

pub fn installment_plan_view(plan: InstallmentPlan, today: Date) -> InstallmentPlanView {
    let sum = plan.installments.iter().map(|i| i.amount).sum();
    let lock = plan.lock_reason();
    InstallmentPlanView {
        account_number: plan.account_number,
        amount: plan.amount,
        currency: plan.currency,
        due_day: plan.due_day,
        valid_from: plan.valid_from,
        sum,
        next_due_date: next_due_date(today.max(plan.valid_from), plan.due_day),
        change_possible: lock.is_none() && plan.pending_change.is_none(),
        change_refused_reason: lock.or_else(|| plan.pending_change.as_ref().map(|_| "CHANGE_PENDING".to_owned())),
        installments: plan
            .installments
            .into_iter()
            .map(|i| InstallmentView { due_date: i.due_date, amount: i.amount, status: i.status })
            .collect(),
        pending_change: plan.pending_change,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::PaymentMethod;
    use time::macros::date;

    #[test]
    fn ibans_show_only_their_last_four_characters() {
        assert_eq!(mask_iban("DE89 3704 0044 0532 0130 00"), "******************3000");
        assert_eq!(mask_iban("DE12"), "DE12");
    }

    #[test]
    fn next_due_dates_follow_the_due_day() {
        assert_eq!(next_due_date(date!(2026 - 12 - 01), 15), date!(2026 - 12 - 15));
        assert_eq!(next_due_date(date!(2026 - 12 - 16), 15), date!(2027 - 01 - 15));
        assert_eq!(next_due_date(date!(2026 - 12 - 01), 1), date!(2026 - 12 - 01));
        assert_eq!(next_due_date(date!(2027 - 02 - 01), 30), date!(2027 - 02 - 28));
        assert_eq!(next_due_date(date!(2026 - 12 - 29), 28), date!(2027 - 01 - 28));
    }

    #[test]
    fn an_iban_keeps_its_last_four_characters_exactly() {
        assert_eq!(mask_iban("DE123"), "*E123");
        assert_eq!(mask_iban("AB"), "AB");
        let view = BankDetailsView::from(crate::testkit::demo().bank_details[0].clone());
        let account = view.bank_account.unwrap();
        assert_eq!((account.iban.as_str(), account.holder.as_str()), ("******************3000", "Erika Mustermann"));
        assert_eq!((account.bic.as_deref(), account.bank_name.as_deref()), (Some("COBADEFFXXX"), Some("Commerzbank")));
        let mandate = view.mandate.unwrap();
        assert_eq!(
            (mandate.reference.as_str(), mandate.status.as_str(), mandate.signed_on),
            ("EVI-800000001-01", "ACTIVE", date!(2021 - 02 - 10))
        );
        assert_eq!(
            (view.account_number.as_str(), view.payment_method, view.payout_account),
            ("800000001", PaymentMethod::SepaDirectDebit, None)
        );
    }

    #[test]
    fn a_due_date_past_the_year_end_is_in_january() {
        assert_eq!(next_due_date(date!(2026 - 12 - 16), 1), date!(2027 - 01 - 01));
        assert_eq!(next_due_date(date!(2026 - 11 - 16), 15), date!(2026 - 12 - 15));
        assert_eq!(next_due_date(date!(2026 - 12 - 31), 31), date!(2026 - 12 - 31));
        assert_eq!(next_due_date(date!(2027 - 01 - 31), 30), date!(2027 - 02 - 28));
        assert_eq!(next_due_date(date!(2028 - 02 - 01), 31), date!(2028 - 02 - 29));
    }

    #[test]
    fn the_plan_view_says_whether_and_why_not_a_change_is_possible() {
        let plans: Vec<InstallmentPlan> =
            crate::testkit::demo().installment_plans.into_iter().map(|p| p.entity).collect();
        let today = date!(2026 - 12 - 01);
        let free = installment_plan_view(plans[0].clone(), today);
        assert_eq!((free.change_possible, free.change_refused_reason.clone()), (true, None));
        assert_eq!(free.next_due_date, date!(2026 - 12 - 15));
        assert_eq!(free.sum, plans[0].installments.iter().map(|i| i.amount).sum::<Decimal>());
        assert!(free.sum > Decimal::ZERO);
        assert_eq!(free.installments.len(), plans[0].installments.len());
        assert_eq!((free.amount, free.due_day, free.currency.as_str()), (plans[0].amount, 15, "EUR"));
        let locked = installment_plan_view(plans[2].clone(), today);
        assert_eq!(
            (locked.change_possible, locked.change_refused_reason.as_deref()),
            (false, Some("LAST_EXECUTION_IN_PROGRESS"))
        );
        // The last installment still being processed locks the plan, lock flag or not.
        let processing = installment_plan_view(plans[3].clone(), today);
        assert!(!plans[3].change_locked);
        assert_eq!(
            (processing.change_possible, processing.change_refused_reason.as_deref()),
            (false, Some("LAST_EXECUTION_IN_PROGRESS"))
        );
        let mut unexplained = plans[2].clone();
        unexplained.change_locked_reason = None;
        assert_eq!(installment_plan_view(unexplained, today).change_refused_reason.as_deref(), Some("LOCKED"));
        let mut pending = plans[0].clone();
        pending.pending_change = Some(PendingInstallmentChange {
            request_id: RequestId::new_random(),
            amount: Decimal::TEN,
            valid_from: date!(2027 - 01 - 15),
        });
        let view = installment_plan_view(pending, today);
        assert_eq!((view.change_possible, view.change_refused_reason.as_deref()), (false, Some("CHANGE_PENDING")));
        assert!(view.pending_change.is_some());
        // A plan that starts later is due from its start.
        let mut later = plans[0].clone();
        later.valid_from = date!(2027 - 03 - 01);
        assert_eq!(installment_plan_view(later, today).next_due_date, date!(2027 - 03 - 15));
    }

    #[test]
    fn views_show_the_mirrored_values() {
        let demo = crate::testkit::demo();
        let customer = CustomerView::from(demo.partners[0].clone());
        assert_eq!((customer.customer_number.as_str(), customer.last_name.as_str()), ("1000001", "Mustermann"));
        assert_eq!(
            (customer.email.as_deref(), customer.notification_consent),
            (Some("erika.mustermann@example.org"), true)
        );
        let contract = ContractView::from(demo.contracts[0].entity.clone());
        assert_eq!((contract.contract_number.as_str(), contract.malo_id.as_str()), ("5000001", "51234567895"));
        assert_eq!((contract.start_date, contract.consumption_point.city.as_str()), (date!(2021 - 03 - 01), "Köln"));
        let account = AccountContractsView::new(demo.accounts[2].clone(), vec![contract]);
        assert_eq!(account.bill_recipient.unwrap().name, "Hausverwaltung Elbblick GmbH");
        assert_eq!((account.account_number.as_str(), account.contracts.len()), ("800000003", 1));
    }
}
