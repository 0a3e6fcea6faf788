//! The CRM entities the portal mirrors, as typed values. Field names follow the EVI
//! export (camelCase), so one mapping serves the import, the mirror and the API.

use crate::ids::{
    AccountNumber, ContractNumber, CustomerNumber, DocumentId, InstallationId, LoginId, MaloId, MeterNumber, ProductId,
    RegisterCode, RequestId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

/// ISO 8601 calendar dates (`2026-12-01`) in serde.
pub mod iso_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::{Date, format_description::BorrowedFormatItem, macros::format_description};

    pub const FORMAT: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        let text = d.format(FORMAT).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let raw = String::deserialize(d)?;
        Date::parse(&raw, FORMAT).map_err(|_| serde::de::Error::custom("expected a date YYYY-MM-DD"))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(raw) => Date::parse(&raw, FORMAT)
                    .map(Some)
                    .map_err(|_| serde::de::Error::custom("expected a date YYYY-MM-DD")),
            }
        }
    }

    pub fn format(d: Date) -> String {
        d.format(FORMAT).unwrap_or_default()
    }
}

/// Fixed-width UTC timestamps (`2026-12-01T09:00:00.000Z`): they sort as strings, which
/// keys and index ranges rely on.
pub mod timestamp {
    use time::{OffsetDateTime, UtcOffset, format_description::BorrowedFormatItem, macros::format_description};

    const FORMAT: &[BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

    pub fn format(t: OffsetDateTime) -> String {
        t.to_offset(UtcOffset::UTC).format(FORMAT).unwrap_or_default()
    }

    /// serde in the fixed-width form; any RFC 3339 time is read.
    pub mod serde {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;
        use time::format_description::well_known::Rfc3339;

        pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&super::format(*t))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
            let raw = String::deserialize(d)?;
            OffsetDateTime::parse(&raw, &Rfc3339).map_err(|_| serde::de::Error::custom("expected an RFC 3339 time"))
        }
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;
        use time::format_description::well_known::Rfc3339;

        pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::format(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|raw| OffsetDateTime::parse(&raw, &Rfc3339))
                .transpose()
                .map_err(|_| serde::de::Error::custom("expected an RFC 3339 time"))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PartnerType {
    Person,
    Organization,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    pub street: String,
    pub house_number: String,
    pub postal_code: String,
    pub city: String,
    pub country: String,
}

/// Business partner (Geschäftspartner): a person or an organisation; the customer number
/// is its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BusinessPartner {
    pub partner_number: CustomerNumber,
    pub partner_type: PartnerType,
    pub salutation: Option<String>,
    pub title: Option<String>,
    pub first_name: Option<String>,
    /// The last name of a person; the name of an organisation.
    pub last_name: String,
    pub address: Address,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub fax: Option<String>,
    pub email: Option<String>,
    pub notification_consent: bool,
    pub account_manager: Option<String>,
    /// A contact-data change the customer made in the portal that the CRM has not
    /// confirmed yet: the values above already show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_contact_change: Option<crate::ids::RequestId>,
    /// A change of name, salutation, title or address the customer requested in the
    /// portal: the values above stay the CRM's until it confirms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_data_change: Option<PendingDataChange>,
}

/// A customer-data change waiting for the CRM: the request and the values it asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PendingDataChange {
    pub request_id: crate::ids::RequestId,
    #[serde(with = "time::serde::rfc3339")]
    pub submitted_at: OffsetDateTime,
    /// The requested values by field (`salutation`, `title`, `firstName`, `lastName`,
    /// `address`); `null` removes a title.
    pub changes: serde_json::Map<String, serde_json::Value>,
}

impl BusinessPartner {
    /// The name a customer types to identify himself: last name, or the organisation's name.
    pub fn identifying_name(&self) -> &str {
        &self.last_name
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentMethod {
    SepaDirectDebit,
    BankTransfer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BankAccount {
    pub holder: String,
    pub iban: String,
    pub bic: Option<String>,
    pub bank_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SepaMandate {
    pub reference: String,
    pub status: String,
    #[serde(with = "iso_date")]
    pub signed_on: Date,
    pub creditor_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillRecipient {
    pub name: String,
    pub address: Address,
}

/// Contract account (Vertragskonto) as exported, bank details included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContractAccount {
    pub account_number: AccountNumber,
    pub partner_number: CustomerNumber,
    pub billing_address: Address,
    pub bill_recipient: Option<BillRecipient>,
    pub payment_method: PaymentMethod,
    pub bank_account: Option<BankAccount>,
    pub payout_account: Option<BankAccount>,
    pub mandate: Option<SepaMandate>,
}

/// Bank details of one contract account (Bankverbindung), mirrored on their own so that
/// reading an account's address never reads its IBAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankDetails {
    pub partner_number: CustomerNumber,
    pub account_number: AccountNumber,
    pub payment_method: PaymentMethod,
    pub bank_account: Option<BankAccount>,
    pub payout_account: Option<BankAccount>,
    pub mandate: Option<SepaMandate>,
    /// A change the customer made in the portal that the CRM has not confirmed yet: the
    /// values above already show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<RequestId>,
    /// A new SEPA mandate the customer granted in the portal, until the CRM confirms it with
    /// its reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate_request: Option<MandateRequest>,
}

/// The mandate a customer granted in the portal: the version of the mandate text shown, and
/// when it was accepted. The CRM assigns the reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MandateRequest {
    pub text_version: String,
    #[serde(with = "timestamp::serde")]
    pub accepted_at: time::OffsetDateTime,
}

/// Contract account as mirrored: the account without its bank details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractAccountRecord {
    pub partner_number: CustomerNumber,
    pub account_number: AccountNumber,
    pub billing_address: Address,
    pub bill_recipient: Option<BillRecipient>,
    /// A billing-address change not yet confirmed by the CRM (the values above show it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<RequestId>,
}

/// A termination the customer submitted that the CRM has not processed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PendingTermination {
    pub request_id: RequestId,
    pub reason: String,
    #[serde(with = "iso_date")]
    pub termination_date: Date,
}

/// An installment change the customer requested that the CRM has not processed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PendingInstallmentChange {
    pub request_id: RequestId,
    pub amount: Decimal,
    #[serde(with = "iso_date")]
    pub valid_from: Date,
}

/// Consumption point (Verbrauchsstelle) with its market location id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumptionPoint {
    pub malo_id: MaloId,
    pub address: Address,
}

/// Contract (Vertrag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contract {
    pub contract_number: ContractNumber,
    pub account_number: AccountNumber,
    pub product_id: ProductId,
    #[serde(with = "iso_date")]
    pub start_date: Date,
    #[serde(with = "iso_date::option", default)]
    pub end_date: Option<Date>,
    pub installation_id: InstallationId,
    pub consumption_point: ConsumptionPoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_termination: Option<PendingTermination>,
}

/// Installation (Anlage); its account is the "Anlagenkonto".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Installation {
    pub installation_id: InstallationId,
    pub contract_number: ContractNumber,
    pub meter_numbers: Vec<MeterNumber>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Commodity {
    Electricity,
    Gas,
    Water,
    Heat,
}

/// One register of a meter: single-tariff, or HT / NT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Register {
    pub code: RegisterCode,
    pub obis: String,
    /// Digits before the decimal point: the meter rolls over at 10^digits.
    pub digits: u32,
    /// Decimal places the register shows.
    pub decimals: u32,
    /// What the register is expected to count in a year (the CRM's forecast, in the meter's
    /// unit): the base of the plausible range of a new reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_annual_consumption: Option<rust_decimal::Decimal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReadingSource {
    Customer,
    NetworkOperator,
    Estimated,
    Supplier,
}

/// The latest reading of one register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastReading {
    pub register: RegisterCode,
    #[serde(with = "iso_date")]
    pub date: Date,
    pub value: Decimal,
    pub source: ReadingSource,
}

/// Meter (Zähler) with its registers and, in the mirror, the last reading per register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Meter {
    pub meter_number: MeterNumber,
    pub installation_id: InstallationId,
    pub commodity: Commodity,
    pub unit: String,
    pub registers: Vec<Register>,
    /// The day the meter was removed from its installation (Ausbaudatum, a meter exchange):
    /// its last reading can be dated that day at the latest, and after it the meter leaves
    /// the views (its successor appears on the same installation).
    #[serde(with = "iso_date::option", default, skip_serializing_if = "Option::is_none")]
    pub removed_on: Option<Date>,
}

/// A meter as the mirror stores it: owner, installation, contract and last readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterRecord {
    pub partner_number: CustomerNumber,
    pub contract_number: ContractNumber,
    /// End of the supply contract, if it ends; the meter is the customer's until then.
    #[serde(with = "iso_date::option", default)]
    pub contract_end_date: Option<Date>,
    #[serde(flatten)]
    pub meter: Meter,
    #[serde(default)]
    pub last_readings: Vec<LastReading>,
    /// Incremented by every accepted reading: a reading checked against other last
    /// readings than the stored ones is refused (optimistic concurrency).
    #[serde(default)]
    pub version: u64,
}

impl MeterRecord {
    pub fn last_reading(&self, register: &RegisterCode) -> Option<&LastReading> {
        self.last_readings.iter().find(|r| &r.register == register)
    }

    /// Whether the customer is still supplied through this meter on `day`: neither the
    /// contract has ended nor the meter been removed before it.
    pub fn is_active_on(&self, day: Date) -> bool {
        self.contract_end_date.is_none_or(|end| end >= day) && self.meter.removed_on.is_none_or(|end| end >= day)
    }
}

/// Meter reading (Zählerstand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterReading {
    pub meter_number: MeterNumber,
    pub register: RegisterCode,
    #[serde(with = "iso_date")]
    pub date: Date,
    pub value: Decimal,
    pub source: ReadingSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstallmentStatus {
    Open,
    InProgress,
    Paid,
    Overdue,
    Cancelled,
}

/// Installment (Abschlag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Installment {
    #[serde(with = "iso_date")]
    pub due_date: Date,
    pub amount: Decimal,
    pub status: InstallmentStatus,
}

/// Installment plan (Abschlagsplan) of a contract account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallmentPlan {
    pub account_number: AccountNumber,
    pub amount: Decimal,
    pub currency: String,
    pub due_day: u8,
    #[serde(with = "iso_date")]
    pub valid_from: Date,
    pub change_locked: bool,
    pub change_locked_reason: Option<String>,
    pub installments: Vec<Installment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingInstallmentChange>,
}

impl InstallmentPlan {
    /// Why the plan cannot be changed now, if it cannot: the CRM's lock (with its reason), or,
    /// as the module description has it, its last installment still being processed.
    pub fn lock_reason(&self) -> Option<String> {
        if self.change_locked {
            return Some(self.change_locked_reason.clone().unwrap_or_else(|| "LOCKED".to_owned()));
        }
        let last = self.installments.iter().max_by_key(|i| i.due_date)?;
        (last.status == InstallmentStatus::InProgress).then(|| "LAST_EXECUTION_IN_PROGRESS".to_owned())
    }
}

/// Document (Dokument) in the customer's inbox; the file itself is not part of the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub document_id: DocumentId,
    pub partner_number: CustomerNumber,
    pub account_number: Option<AccountNumber>,
    pub category: String,
    #[serde(with = "iso_date")]
    pub date: Date,
    pub title: String,
    pub file_name: String,
    pub media_type: String,
    /// The CRM's further attributes of the document (Merkmale, such as the dispatch channel):
    /// the inbox configuration can show only documents with a given value.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// The file, in the export only; the mirror keeps it in the document store.
    #[serde(default, skip_serializing)]
    pub content_base64: Option<String>,
}

/// Product (Produkt). Prices are decimals; the low-tariff price only for HT/NT products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Product {
    pub product_id: ProductId,
    pub name: String,
    pub commodity: Commodity,
    pub customer_type: String,
    pub base_price_per_year: Decimal,
    pub unit_price: Decimal,
    #[serde(default)]
    pub unit_price_low: Option<Decimal>,
    pub unit: String,
    #[serde(with = "iso_date::option", default)]
    pub price_guarantee_until: Option<Date>,
}

/// One value of a code list (Schlüsselwert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeValue {
    pub list_name: String,
    pub key: String,
    pub label: String,
    /// Department a message with this reason is routed to (message reasons only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_to: Option<String>,
    /// The dates a termination with this reason allows (termination reasons only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_rule: Option<TerminationRule>,
}

/// The notice rule of a termination reason, as the CRM keeps it on the code list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TerminationRule {
    /// The earliest termination date, in days from today: positive for a notice period,
    /// negative for a reason that may be reported late (a move, a death).
    pub earliest_days_from_today: i64,
    /// The termination needs the move-out date and ends on it.
    pub move_out_date_required: bool,
}

/// Status of a portal login as EVI knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginStatus {
    #[serde(rename = "AKTIV")]
    Active,
    #[serde(rename = "GELÖSCHT")]
    Deleted,
    /// Waiting for approval by the CRM.
    #[serde(rename = "AUSSTEHEND")]
    Pending,
    #[serde(rename = "GESPERRT")]
    Locked,
}

/// Portal login (Portal-Login).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortalLogin {
    pub login_id: LoginId,
    pub username: String,
    pub email: String,
    pub status: LoginStatus,
    pub partner_numbers: Vec<CustomerNumber>,
    pub must_change_password: bool,
    pub password_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for PortalLogin {
    // The hash stays out of every log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalLogin")
            .field("login_id", &self.login_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::{date, datetime};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Dates {
        #[serde(with = "iso_date")]
        day: Date,
        #[serde(with = "iso_date::option")]
        maybe: Option<Date>,
        #[serde(with = "timestamp::serde")]
        at: OffsetDateTime,
        #[serde(with = "timestamp::option")]
        maybe_at: Option<OffsetDateTime>,
    }

    #[test]
    fn dates_and_times_have_one_fixed_form() {
        let d = Dates {
            day: date!(2026 - 12 - 01),
            maybe: Some(date!(2027 - 01 - 15)),
            at: datetime!(2026-12-01 10:00:00.5 +01:00),
            maybe_at: Some(datetime!(2026-12-01 09:00 UTC)),
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            json!({"day": "2026-12-01", "maybe": "2027-01-15", "at": "2026-12-01T09:00:00.500Z", "maybe_at": "2026-12-01T09:00:00.000Z"})
        );
        assert_eq!(serde_json::from_value::<Dates>(v).unwrap(), d);
        let none = json!({"day": "2026-12-01", "maybe": null, "at": "2026-12-01T10:00:00+01:00", "maybe_at": null});
        let parsed: Dates = serde_json::from_value(none).unwrap();
        assert_eq!((parsed.maybe, parsed.maybe_at, parsed.at), (None, None, datetime!(2026-12-01 09:00 UTC)));
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            json!({"day": "2026-12-01", "maybe": null, "at": "2026-12-01T09:00:00.000Z", "maybe_at": null})
        );
        for bad in [
            json!({"day": "01.12.2026", "maybe": null, "at": "2026-12-01T10:00:00Z", "maybe_at": null}),
            json!({"day": "2026-12-01", "maybe": "2026-13-01", "at": "2026-12-01T10:00:00Z", "maybe_at": null}),
            json!({"day": "2026-12-01", "maybe": null, "at": "2026-12-01 10:00", "maybe_at": null}),
            json!({"day": "2026-12-01", "maybe": null, "at": "2026-12-01T10:00:00Z", "maybe_at": "gestern"}),
        ] {
            assert!(serde_json::from_value::<Dates>(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(iso_date::format(date!(2026 - 01 - 05)), "2026-01-05");
        assert_eq!(timestamp::format(datetime!(2026-06-30 23:59:59.9999 -02:00)), "2026-07-01T01:59:59.999Z");
    }

    fn meter(end: Option<Date>) -> MeterRecord {
        let s = crate::testkit::demo();
        MeterRecord {
            contract_end_date: end,
            ..s.meters.into_iter().find(|m| m.meter.meter_number.as_str() == "1EMH0012345678").unwrap()
        }
    }

    #[test]
    fn a_meter_is_active_up_to_its_contracts_last_day() {
        let day = date!(2026 - 12 - 01);
        assert!(meter(None).is_active_on(day));
        assert!(meter(Some(day)).is_active_on(day));
        assert!(!meter(Some(date!(2026 - 11 - 30))).is_active_on(day));
        let mut removed = meter(None);
        removed.meter.removed_on = Some(day);
        assert!(removed.is_active_on(day) && !removed.is_active_on(day + time::Duration::days(1)));
        let m = meter(None);
        let nt = m.last_reading(&RegisterCode::parse("NT").unwrap()).unwrap();
        assert_eq!(nt.register.as_str(), "NT");
        let ht = m.last_reading(&RegisterCode::parse("HT").unwrap()).unwrap();
        assert_eq!(ht.register.as_str(), "HT");
        assert_ne!(ht.value, nt.value);
        assert!(m.last_reading(&RegisterCode::parse("SINGLE").unwrap()).is_none());
    }

    #[test]
    fn an_organisation_identifies_with_its_name_and_logins_hide_their_hash() {
        let s = crate::testkit::demo();
        assert_eq!(s.partners[2].identifying_name(), "Bäckerei Schmidt GmbH");
        assert_eq!(s.partners[0].identifying_name(), "Mustermann");
        let debug = format!("{:?}", s.logins[0]);
        assert_eq!(debug, "PortalLogin { login_id: LoginId(\"L-0000001\"), status: Active, .. }");
    }
}
