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
    InstallmentPlanView {
        account_number: plan.account_number,
        amount: plan.amount,
        currency: plan.currency,
        due_day: plan.due_day,
        valid_from: plan.valid_from,
        sum,
        next_due_date: next_due_date(today.max(plan.valid_from), plan.due_day),
        change_possible: !plan.change_locked && plan.pending_change.is_none(),
        change_refused_reason: if plan.change_locked {
            Some(plan.change_locked_reason.unwrap_or_else(|| "LOCKED".to_owned()))
        } else {
            plan.pending_change.as_ref().map(|_| "CHANGE_PENDING".to_owned())
        },
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
}
