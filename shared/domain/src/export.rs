//! The EVI export (`evi-export/1`): parsed and validated whole into a [`MirrorSnapshot`]
//! before anything is written, so that a bad record stops the import with an error naming
//! it (entity, key, field) and nothing is half-written.

use crate::entities::*;
use crate::ids::{AccountNumber, ContractNumber, CustomerNumber, InstallationId, MeterNumber};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

pub const FORMAT: &str = "evi-export/1";

/// An entity together with the customer it belongs to: the mirror keys every customer's
/// items by customer number, so that one customer's items of a table are one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owned<T> {
    pub partner_number: CustomerNumber,
    #[serde(flatten)]
    pub entity: T,
}

/// Everything an export holds, validated and with ownership resolved.
#[derive(Debug, Clone, Default)]
pub struct MirrorSnapshot {
    pub partners: Vec<BusinessPartner>,
    pub accounts: Vec<ContractAccountRecord>,
    pub bank_details: Vec<BankDetails>,
    pub contracts: Vec<Owned<Contract>>,
    pub installations: Vec<Owned<Installation>>,
    pub meters: Vec<MeterRecord>,
    pub readings: Vec<MeterReading>,
    pub installment_plans: Vec<Owned<InstallmentPlan>>,
    pub documents: Vec<Document>,
    pub products: Vec<Product>,
    pub code_values: Vec<CodeValue>,
    pub logins: Vec<PortalLogin>,
    /// The CRM's inbox configuration, if the export carries one.
    pub inbox: Option<crate::documents::InboxPolicy>,
    /// The export's position in EVI's change sequence (the same scale as an inbound
    /// message's `version`): every imported item carries it, and is written only over an
    /// older one. 0 when the export does not say.
    pub version: u64,
}

/// A record the import refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entity} {key}: field `{field}`: {message}")]
pub struct ImportError {
    pub entity: &'static str,
    pub key: String,
    pub field: String,
    pub message: String,
}

impl ImportError {
    fn new(entity: &'static str, key: impl Into<String>, field: &str, message: impl Into<String>) -> Self {
        Self { entity, key: key.into(), field: field.to_owned(), message: message.into() }
    }
}

/// Parses an export document.
pub fn parse_export(json: &str) -> Result<MirrorSnapshot, ImportError> {
    let doc: Value =
        serde_json::from_str(json).map_err(|e| ImportError::new("export", "-", "-", format!("not JSON: {e}")))?;
    let format = doc.get("format").and_then(Value::as_str).unwrap_or_default();
    if format != FORMAT {
        return Err(ImportError::new("export", "-", "format", format!("expected \"{FORMAT}\", got \"{format}\"")));
    }
    Snapshot::build(&doc)
}

fn records<T: DeserializeOwned>(
    doc: &Value,
    list: &str,
    entity: &'static str,
    key_field: &str,
) -> Result<Vec<T>, ImportError> {
    let Some(items) = doc.get(list) else {
        return Ok(Vec::new());
    };
    let items = items.as_array().ok_or_else(|| ImportError::new(entity, "-", list, "expected an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            serde_path_to_error::deserialize(item).map_err(|e| {
                let key = item.get(key_field).and_then(Value::as_str).map_or_else(|| format!("#{i}"), str::to_owned);
                let message = e.inner().to_string();
                ImportError::new(entity, key, &e.path().to_string(), message)
            })
        })
        .collect()
}

fn unique<'a>(entity: &'static str, field: &str, keys: impl Iterator<Item = &'a str>) -> Result<(), ImportError> {
    let mut seen = HashSet::new();
    for key in keys {
        if !seen.insert(key) {
            return Err(ImportError::new(entity, key, field, "appears more than once"));
        }
    }
    Ok(())
}

struct Snapshot;

impl Snapshot {
    fn build(doc: &Value) -> Result<MirrorSnapshot, ImportError> {
        let partners: Vec<BusinessPartner> = records(doc, "businessPartners", "businessPartner", "partnerNumber")?;
        let accounts: Vec<ContractAccount> = records(doc, "contractAccounts", "contractAccount", "accountNumber")?;
        let contracts: Vec<Contract> = records(doc, "contracts", "contract", "contractNumber")?;
        let installations: Vec<Installation> = records(doc, "installations", "installation", "installationId")?;
        let meters: Vec<Meter> = records(doc, "meters", "meter", "meterNumber")?;
        let readings: Vec<MeterReading> = records(doc, "meterReadings", "meterReading", "meterNumber")?;
        let plans: Vec<InstallmentPlan> = records(doc, "installmentPlans", "installmentPlan", "accountNumber")?;
        let documents: Vec<Document> = records(doc, "documents", "document", "documentId")?;
        let products: Vec<Product> = records(doc, "products", "product", "productId")?;
        let logins: Vec<PortalLogin> = records(doc, "portalLogins", "portalLogin", "loginId")?;

        unique("businessPartner", "partnerNumber", partners.iter().map(|p| p.partner_number.as_str()))?;
        unique("contractAccount", "accountNumber", accounts.iter().map(|a| a.account_number.as_str()))?;
        unique("contract", "contractNumber", contracts.iter().map(|c| c.contract_number.as_str()))?;
        unique("installation", "installationId", installations.iter().map(|i| i.installation_id.as_str()))?;
        unique("meter", "meterNumber", meters.iter().map(|m| m.meter_number.as_str()))?;
        unique("installmentPlan", "accountNumber", plans.iter().map(|p| p.account_number.as_str()))?;
        unique("document", "documentId", documents.iter().map(|d| d.document_id.as_str()))?;
        unique("product", "productId", products.iter().map(|p| p.product_id.as_str()))?;
        unique("portalLogin", "loginId", logins.iter().map(|l| l.login_id.as_str()))?;
        let usernames: Vec<String> = logins.iter().map(|l| l.username.to_lowercase()).collect();
        unique("portalLogin", "username", usernames.iter().map(String::as_str))?;
        let reading_keys: Vec<String> = readings
            .iter()
            .map(|r| format!("{}/{}/{}", r.meter_number, r.register, iso_date::format(r.date)))
            .collect();
        unique("meterReading", "date", reading_keys.iter().map(String::as_str))?;

        let partner_set: HashSet<&CustomerNumber> = partners.iter().map(|p| &p.partner_number).collect();
        let product_set: HashSet<&str> = products.iter().map(|p| p.product_id.as_str()).collect();

        let mut account_owner: HashMap<AccountNumber, CustomerNumber> = HashMap::new();
        let mut account_records = Vec::new();
        let mut bank_details = Vec::new();
        for a in accounts {
            let key = a.account_number.to_string();
            if !partner_set.contains(&a.partner_number) {
                return Err(ImportError::new("contractAccount", key, "partnerNumber", "unknown business partner"));
            }
            account_owner.insert(a.account_number.clone(), a.partner_number.clone());
            let (record, details) = split_account(a)?;
            account_records.push(record);
            bank_details.push(details);
        }

        let mut contract_owner: HashMap<ContractNumber, (CustomerNumber, InstallationId, Option<time::Date>)> =
            HashMap::new();
        let mut owned_contracts = Vec::new();
        for c in contracts {
            let key = c.contract_number.to_string();
            let owner = account_owner
                .get(&c.account_number)
                .ok_or_else(|| ImportError::new("contract", &key, "accountNumber", "unknown contract account"))?;
            if !product_set.contains(c.product_id.as_str()) {
                return Err(ImportError::new("contract", key, "productId", "unknown product"));
            }
            check_contract(&c)?;
            contract_owner.insert(c.contract_number.clone(), (owner.clone(), c.installation_id.clone(), c.end_date));
            owned_contracts.push(Owned { partner_number: owner.clone(), entity: c });
        }

        let mut installation_owner: HashMap<InstallationId, (CustomerNumber, ContractNumber, Option<time::Date>)> =
            HashMap::new();
        let mut owned_installations = Vec::new();
        for i in installations {
            let key = i.installation_id.to_string();
            let (owner, contract_installation, end_date) = contract_owner
                .get(&i.contract_number)
                .ok_or_else(|| ImportError::new("installation", &key, "contractNumber", "unknown contract"))?;
            if contract_installation != &i.installation_id {
                return Err(ImportError::new(
                    "installation",
                    key,
                    "contractNumber",
                    "the contract names another installation",
                ));
            }
            installation_owner.insert(i.installation_id.clone(), (owner.clone(), i.contract_number.clone(), *end_date));
            owned_installations.push(Owned { partner_number: owner.clone(), entity: i });
        }

        let mut meter_records: BTreeMap<MeterNumber, MeterRecord> = BTreeMap::new();
        for m in meters {
            let key = m.meter_number.to_string();
            let (owner, contract, end_date) = installation_owner
                .get(&m.installation_id)
                .ok_or_else(|| ImportError::new("meter", &key, "installationId", "unknown installation"))?;
            check_meter(&m)?;
            meter_records.insert(
                m.meter_number.clone(),
                MeterRecord {
                    partner_number: owner.clone(),
                    contract_number: contract.clone(),
                    contract_end_date: *end_date,
                    meter: m,
                    last_readings: Vec::new(),
                    version: 0,
                },
            );
        }

        for r in &readings {
            let key = format!("{}/{}/{}", r.meter_number, r.register, iso_date::format(r.date));
            let meter = meter_records
                .get_mut(&r.meter_number)
                .ok_or_else(|| ImportError::new("meterReading", &key, "meterNumber", "unknown meter"))?;
            check_reading_value(&meter.meter, r)?;
            let newer = meter.last_reading(&r.register).is_none_or(|last| r.date >= last.date);
            if newer {
                meter.last_readings.retain(|l| l.register != r.register);
                meter.last_readings.push(LastReading {
                    register: r.register.clone(),
                    date: r.date,
                    value: r.value,
                    source: r.source,
                });
            }
        }

        // A register without the CRM's forecast gets one from its reading history.
        for meter in meter_records.values_mut() {
            let number = meter.meter.meter_number.clone();
            for register in &mut meter.meter.registers {
                if register.expected_annual_consumption.is_none() {
                    let history = readings.iter().filter(|r| r.meter_number == number && r.register == register.code);
                    register.expected_annual_consumption = annual_consumption(history.map(|r| (r.date, r.value)));
                }
            }
        }
        // Neither the CRM's forecast nor enough history (a new meter): the typical consumption
        // of the product's customer type.
        let product_of_installation: HashMap<&InstallationId, &Product> = owned_contracts
            .iter()
            .filter_map(|c: &Owned<Contract>| {
                Some((&c.entity.installation_id, products.iter().find(|p| p.product_id == c.entity.product_id)?))
            })
            .collect();
        for meter in meter_records.values_mut() {
            let Some(product) = product_of_installation.get(&meter.meter.installation_id) else { continue };
            let registers = meter.meter.registers.len();
            for register in &mut meter.meter.registers {
                if register.expected_annual_consumption.is_none() {
                    register.expected_annual_consumption = typical_annual_consumption(
                        product.commodity,
                        &product.customer_type,
                        register.code.as_str(),
                        registers,
                    );
                }
            }
        }

        let mut owned_plans = Vec::new();
        for p in plans {
            let owner = account_owner.get(&p.account_number).ok_or_else(|| {
                ImportError::new(
                    "installmentPlan",
                    p.account_number.to_string(),
                    "accountNumber",
                    "unknown contract account",
                )
            })?;
            owned_plans.push(Owned { partner_number: owner.clone(), entity: p });
        }

        for d in &documents {
            crate::documents::check_attributes(&d.attributes)
                .map_err(|m| ImportError::new("document", d.document_id.to_string(), "attributes", m))?;
            if let Some(content) = &d.content_base64 {
                check_document_content(content, &d.media_type)
                    .map(drop)
                    .map_err(|m| ImportError::new("document", d.document_id.to_string(), "contentBase64", m))?;
            }
            if !partner_set.contains(&d.partner_number) {
                return Err(ImportError::new(
                    "document",
                    d.document_id.to_string(),
                    "partnerNumber",
                    "unknown business partner",
                ));
            }
            if let Some(acc) = &d.account_number
                && account_owner.get(acc) != Some(&d.partner_number)
            {
                return Err(ImportError::new(
                    "document",
                    d.document_id.to_string(),
                    "accountNumber",
                    "not an account of this partner",
                ));
            }
        }

        for l in &logins {
            if let Some(p) = l.partner_numbers.iter().find(|p| !partner_set.contains(p)) {
                return Err(ImportError::new(
                    "portalLogin",
                    l.login_id.to_string(),
                    "partnerNumbers",
                    format!("unknown business partner {p}"),
                ));
            }
        }

        let code_values = code_lists(doc)?;
        let version = match doc.get("version") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| ImportError::new("export", "-", "version", "expected a whole number from 0"))?,
        };
        let inbox = match doc.get("inboxConfiguration").filter(|v| !v.is_null()) {
            None => None,
            Some(value) => {
                let policy: crate::documents::InboxPolicy = serde_path_to_error::deserialize(value).map_err(|e| {
                    ImportError::new("inboxConfiguration", "-", &e.path().to_string(), e.inner().to_string())
                })?;
                policy.check().map_err(|m| ImportError::new("inboxConfiguration", "-", "-", m))?;
                Some(policy)
            }
        };

        Ok(MirrorSnapshot {
            partners,
            accounts: account_records,
            bank_details,
            contracts: owned_contracts,
            installations: owned_installations,
            meters: meter_records.into_values().collect(),
            readings,
            installment_plans: owned_plans,
            documents,
            products,
            code_values,
            logins,
            inbox,
            version,
        })
    }
}

fn code_lists(doc: &Value) -> Result<Vec<CodeValue>, ImportError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Entry {
        key: String,
        label: String,
        #[serde(default)]
        route_to: Option<String>,
        #[serde(default)]
        termination_rule: Option<TerminationRule>,
    }
    let Some(lists) = doc.get("codeLists") else {
        return Ok(Vec::new());
    };
    let lists =
        lists.as_object().ok_or_else(|| ImportError::new("codeList", "-", "codeLists", "expected an object"))?;
    let mut values = Vec::new();
    for (name, entries) in lists {
        let entries: Vec<Entry> = serde_path_to_error::deserialize(entries)
            .map_err(|e| ImportError::new("codeList", name, &e.path().to_string(), e.inner().to_string()))?;
        unique("codeList", "key", entries.iter().map(|e| e.key.as_str()))
            .map_err(|e| ImportError { key: format!("{name}/{}", e.key), ..e })?;
        for e in entries {
            if e.key.trim().is_empty() || e.label.trim().is_empty() {
                return Err(ImportError::new("codeList", name, "key", "empty key or label"));
            }
            values.push(CodeValue {
                list_name: name.clone(),
                key: e.key,
                label: e.label,
                route_to: e.route_to,
                termination_rule: e.termination_rule,
            });
        }
    }
    Ok(values)
}

/// Checks a contract account and splits it into the account record and its bank details
/// (mirrored apart, so that reading an address never reads an IBAN). The import and the
/// inbound sync both map accounts through here.
pub fn split_account(a: ContractAccount) -> Result<(ContractAccountRecord, BankDetails), ImportError> {
    let key = a.account_number.to_string();
    if a.payment_method == PaymentMethod::SepaDirectDebit && (a.bank_account.is_none() || a.mandate.is_none()) {
        return Err(ImportError::new(
            "contractAccount",
            key,
            "bankAccount",
            "direct debit needs a bank account and a mandate",
        ));
    }
    for (field, account) in [("bankAccount", &a.bank_account), ("payoutAccount", &a.payout_account)] {
        if let Some(acc) = account
            && !iban_is_valid(&acc.iban)
        {
            return Err(ImportError::new("contractAccount", key, &format!("{field}.iban"), "not a valid IBAN"));
        }
    }
    Ok((
        ContractAccountRecord {
            partner_number: a.partner_number.clone(),
            account_number: a.account_number.clone(),
            billing_address: a.billing_address,
            bill_recipient: a.bill_recipient,
            pending_change: None,
        },
        BankDetails {
            partner_number: a.partner_number,
            account_number: a.account_number,
            payment_method: a.payment_method,
            bank_account: a.bank_account,
            payout_account: a.payout_account,
            mandate: a.mandate,
            pending_change: None,
            mandate_request: None,
        },
    ))
}

/// The typical annual consumption of a register by the product's commodity and customer type,
/// in the meter's unit, for a register with neither the CRM's forecast nor a year of history:
/// electricity 3,500 kWh (PRIVATE) or 15,000 kWh (BUSINESS); gas 2,000 m³ (PRIVATE, about
/// 20,000 kWh) or 6,000 m³ (BUSINESS). Of a two-tariff meter HT takes 60 % and NT 40 %;
/// several other registers share it evenly. `None` for another customer type.
pub fn typical_annual_consumption(
    commodity: Commodity,
    customer_type: &str,
    register: &str,
    registers: usize,
) -> Option<rust_decimal::Decimal> {
    use rust_decimal::Decimal;
    let total = match (commodity, customer_type) {
        (Commodity::Electricity, "PRIVATE") => 3_500,
        (Commodity::Electricity, "BUSINESS") => 15_000,
        (Commodity::Gas, "PRIVATE") => 2_000,
        (Commodity::Gas, "BUSINESS") => 6_000,
        _ => return None,
    };
    let total = Decimal::from(total);
    Some(match (register, registers) {
        ("HT", 2) => total * Decimal::new(6, 1),
        ("NT", 2) => total * Decimal::new(4, 1),
        (_, n) => (total / Decimal::from(n.max(1))).round(),
    })
}

/// The rules every meter meets, in the export and from the sync: at least one register,
/// each code once, plausible digits and decimals.
pub fn check_meter(m: &Meter) -> Result<(), ImportError> {
    let key = m.meter_number.to_string();
    if m.registers.is_empty() {
        return Err(ImportError::new("meter", key, "registers", "a meter has at least one register"));
    }
    unique("meter", "registers.code", m.registers.iter().map(|r| r.code.as_str()))
        .map_err(|e| ImportError { key: key.clone(), ..e })?;
    if let Some(r) = m.registers.iter().find(|r| !(1..=12).contains(&r.digits) || r.decimals > 6) {
        return Err(ImportError::new(
            "meter",
            key,
            "registers",
            format!("register {} has implausible digits/decimals", r.code),
        ));
    }
    Ok(())
}

/// The rules of a contract on its own.
pub fn check_contract(c: &Contract) -> Result<(), ImportError> {
    if c.end_date.is_some_and(|end| end < c.start_date) {
        return Err(ImportError::new("contract", c.contract_number.to_string(), "endDate", "ends before it starts"));
    }
    Ok(())
}

/// A reading fits its meter: a register of the meter, not negative, and no more digits or
/// decimals than the register shows.
/// The annual consumption a register's readings show: from the last reading back over the
/// readings of the year before it (at least 90 days between the first and the last), scaled to
/// 365 days. `None` for less history, or for a counter that went down in between (a rollover
/// or an exchange: no reliable figure).
pub fn annual_consumption(
    history: impl Iterator<Item = (time::Date, rust_decimal::Decimal)>,
) -> Option<rust_decimal::Decimal> {
    use rust_decimal::Decimal;
    let mut history: Vec<(time::Date, Decimal)> = history.collect();
    history.sort_by_key(|(date, _)| *date);
    let (last_date, last_value) = *history.last()?;
    let window: Vec<&(time::Date, Decimal)> =
        history.iter().filter(|(date, _)| (last_date - *date).whole_days() <= 366).collect();
    let (first_date, first_value) = **window.first()?;
    let days = (last_date - first_date).whole_days();
    let rising = window.windows(2).all(|w| w[1].1 >= w[0].1);
    (days >= 90 && rising).then(|| ((last_value - first_value) * Decimal::from(365) / Decimal::from(days)).round())
}

pub fn check_reading_value(meter: &Meter, r: &MeterReading) -> Result<(), ImportError> {
    let key = format!("{}/{}/{}", r.meter_number, r.register, iso_date::format(r.date));
    let Some(register) = meter.registers.iter().find(|g| g.code == r.register) else {
        return Err(ImportError::new("meterReading", key, "register", "the meter has no such register"));
    };
    if r.value.is_sign_negative()
        || r.value.scale() > register.decimals
        || r.value >= rust_decimal::Decimal::from(10u64.pow(register.digits))
    {
        return Err(ImportError::new(
            "meterReading",
            key,
            "value",
            "negative, or more digits or decimals than the register shows",
        ));
    }
    Ok(())
}

/// Largest document file.
pub const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;

/// The file must decode and be what its media type says (by its first bytes); its bytes.
pub fn check_document_content(content: &str, media_type: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(content).map_err(|e| format!("not base64: {e}"))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err("larger than 10 MB".into());
    }
    let magic: &[u8] = match media_type {
        "application/pdf" => b"%PDF",
        "image/png" => b"\x89PNG",
        "image/jpeg" => b"\xFF\xD8\xFF",
        other => return Err(format!("media type {other} is not accepted")),
    };
    if bytes.starts_with(magic) { Ok(bytes) } else { Err(format!("the content is not {media_type}")) }
}

/// ISO 13616: country, length for the country and mod-97 check digits (`iban_validate`).
pub fn iban_is_valid(raw: &str) -> bool {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    compact.to_ascii_uppercase().parse::<iban::Iban>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEMO: &str = include_str!("../../../fixtures/crm-demo.json");

    #[test]
    fn the_demo_export_is_valid() {
        let s = parse_export(DEMO).unwrap();
        assert_eq!(s.partners.len(), 5);
        assert_eq!(s.meters.len(), 6);
        assert_eq!(s.logins.len(), 3);
        let erika = s.meters.iter().find(|m| m.meter.meter_number.as_str() == "1EMH0012345678").unwrap();
        assert_eq!(erika.partner_number.as_str(), "1000001");
        assert_eq!(erika.last_readings.len(), 2);
        let gas = s.meters.iter().find(|m| m.meter.meter_number.as_str() == "7ELS8135012345").unwrap();
        assert_eq!(gas.last_readings[0].value.to_string(), "5532.275");
        assert!(
            s.code_values.iter().any(|c| c.list_name == "messageReasons" && c.route_to.as_deref() == Some("messwesen"))
        );
    }

    fn broken(edit: impl FnOnce(&mut Value)) -> ImportError {
        let mut doc: Value = serde_json::from_str(DEMO).unwrap();
        edit(&mut doc);
        parse_export(&doc.to_string()).unwrap_err()
    }

    #[test]
    fn a_bad_record_is_named_by_entity_key_and_field() {
        let e = broken(|d| d["contracts"][2]["consumptionPoint"]["maloId"] = "53456789018".into());
        assert_eq!((e.entity, e.key.as_str(), e.field.as_str()), ("contract", "5000003", "consumptionPoint.maloId"));

        let e = broken(|d| d["meterReadings"][0]["register"] = "XX".into());
        assert_eq!((e.entity, e.field.as_str()), ("meterReading", "register"));

        let e =
            broken(|d| d["businessPartners"][1]["address"].as_object_mut().unwrap().remove("city").map(drop).unwrap());
        assert_eq!((e.entity, e.key.as_str(), e.field.as_str()), ("businessPartner", "1000002", "address"));
        assert!(e.message.contains("city"), "{e}");

        let e = broken(|d| d["contractAccounts"][0]["bankAccount"]["iban"] = "DE89370400440532013001".into());
        assert_eq!((e.entity, e.key.as_str(), e.field.as_str()), ("contractAccount", "800000001", "bankAccount.iban"));

        let e = broken(|d| d["format"] = "evi-export/9".into());
        assert_eq!(e.field, "format");

        // A "PDF" that is not one.
        let e = broken(|d| d["documents"][0]["contentBase64"] = "aGVsbG8=".into());
        assert_eq!((e.entity, e.key.as_str(), e.field.as_str()), ("document", "D-2024-000101", "contentBase64"));
    }

    #[test]
    fn what_would_collide_in_the_mirror_is_refused() {
        // Two readings of one register on one day would overwrite each other.
        let e = broken(|d| {
            let copy = d["meterReadings"][0].clone();
            d["meterReadings"].as_array_mut().unwrap().push(copy);
        });
        assert_eq!((e.entity, e.field.as_str()), ("meterReading", "date"));
        // Usernames are unique regardless of case.
        let e = broken(|d| d["portalLogins"][1]["username"] = "JMueller".into());
        assert_eq!((e.entity, e.key.as_str(), e.field.as_str()), ("portalLogin", "jmueller", "username"));
        // A value the register cannot show.
        let e = broken(|d| {
            let r = d["meterReadings"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|r| r["meterNumber"] == "1EBZ0012398765")
                .unwrap();
            r["value"] = "100000".into();
        });
        assert_eq!((e.entity, e.field.as_str()), ("meterReading", "value"));
    }

    #[test]
    fn iban_check_digits() {
        assert!(iban_is_valid("DE89 3704 0044 0532 0130 00"));
        assert!(iban_is_valid("de89370400440532013000"));
        assert!(!iban_is_valid("DE89370400440532013001"));
        assert!(!iban_is_valid("DE8937040044053201300"));
        assert!(iban_is_valid("GB82WEST12345698765432"));
    }

    fn refused(edit: impl FnOnce(&mut Value)) -> (&'static str, String, String) {
        let e = broken(edit);
        (e.entity, e.key, e.field)
    }

    fn t(entity: &'static str, key: &str, field: &str) -> (&'static str, String, String) {
        (entity, key.to_owned(), field.to_owned())
    }

    #[test]
    fn every_reference_must_resolve() {
        assert_eq!(
            refused(|d| d["contractAccounts"][0]["partnerNumber"] = "1999999".into()),
            t("contractAccount", "800000001", "partnerNumber")
        );
        assert_eq!(
            refused(|d| d["contracts"][0]["accountNumber"] = "899999999".into()),
            t("contract", "5000001", "accountNumber")
        );
        assert_eq!(refused(|d| d["contracts"][0]["productId"] = "NONE".into()), t("contract", "5000001", "productId"));
        assert_eq!(
            refused(|d| d["installations"][0]["contractNumber"] = "5999999".into()),
            t("installation", "A-7000001", "contractNumber")
        );
        // The contract names another installation.
        assert_eq!(
            refused(|d| d["installations"][0]["contractNumber"] = "5000002".into()),
            t("installation", "A-7000001", "contractNumber")
        );
        assert_eq!(
            refused(|d| d["meters"][0]["installationId"] = "A-9".into()),
            t("meter", "1EMH0012345678", "installationId")
        );
        assert_eq!(
            refused(|d| d["meterReadings"][0]["meterNumber"] = "X1".into()),
            t("meterReading", "X1/HT/2024-12-31", "meterNumber")
        );
        assert_eq!(
            refused(|d| d["installmentPlans"][0]["accountNumber"] = "899999999".into()),
            t("installmentPlan", "899999999", "accountNumber")
        );
        assert_eq!(
            refused(|d| d["documents"][0]["partnerNumber"] = "1999999".into()),
            t("document", "D-2024-000101", "partnerNumber")
        );
        // A document of another customer's account.
        assert_eq!(
            refused(|d| d["documents"][0]["accountNumber"] = "800000002".into()),
            t("document", "D-2024-000101", "accountNumber")
        );
        let e = broken(|d| d["portalLogins"][0]["partnerNumbers"] = json!(["1000002", "1999999"]));
        assert_eq!((e.entity, e.key.as_str(), e.field.as_str()), ("portalLogin", "L-0000001", "partnerNumbers"));
        assert!(e.message.contains("1999999"), "{e}");
    }

    #[test]
    fn a_meter_has_registers_of_plausible_size_and_each_once() {
        assert_eq!(refused(|d| d["meters"][0]["registers"] = json!([])), t("meter", "1EMH0012345678", "registers"));
        assert_eq!(
            refused(|d| d["meters"][0]["registers"][1]["code"] = "HT".into()),
            t("meter", "1EMH0012345678", "registers.code")
        );
        for (field, value) in [("digits", 0), ("digits", 13), ("decimals", 7)] {
            let e = broken(|d| d["meters"][0]["registers"][0][field] = value.into());
            assert_eq!(
                (e.entity, e.key.as_str(), e.field.as_str()),
                ("meter", "1EMH0012345678", "registers"),
                "{field} {value}"
            );
            assert_eq!(e.message, "register HT has implausible digits/decimals");
        }
        let mut doc: Value = serde_json::from_str(DEMO).unwrap();
        doc["meters"][0]["registers"][0]["digits"] = 12.into();
        doc["meters"][0]["registers"][0]["decimals"] = 6.into();
        doc["meters"][0]["registers"][1]["digits"] = 1.into();
        doc["meterReadings"].as_array_mut().unwrap().retain(|r| r["meterNumber"] != "1EMH0012345678");
        assert!(parse_export(&doc.to_string()).is_ok(), "12 digits and 6 decimals, or 1 digit, are fine");
    }

    #[test]
    fn the_last_reading_of_each_register_is_its_newest() {
        let s = parse_export(DEMO).unwrap();
        let erika = s.meters.iter().find(|m| m.meter.meter_number.as_str() == "1EMH0012345678").unwrap();
        let newest = |code: &str| {
            s.readings
                .iter()
                .filter(|r| r.meter_number == erika.meter.meter_number && r.register.as_str() == code)
                .max_by_key(|r| r.date)
                .unwrap()
        };
        for code in ["HT", "NT"] {
            let last = erika.last_reading(&crate::ids::RegisterCode::parse(code).unwrap()).unwrap();
            assert_eq!((last.date, last.value), (newest(code).date, newest(code).value), "{code}");
        }
        // In any order of the export.
        let mut doc: Value = serde_json::from_str(DEMO).unwrap();
        doc["meterReadings"].as_array_mut().unwrap().reverse();
        let reversed = parse_export(&doc.to_string()).unwrap();
        let again = reversed.meters.iter().find(|m| m.meter.meter_number.as_str() == "1EMH0012345678").unwrap();
        assert_eq!(again.last_readings.len(), 2);
        for last in &again.last_readings {
            assert_eq!(last.date, newest(last.register.as_str()).date);
        }
    }

    #[test]
    fn a_reading_fits_its_register() {
        let meter: Meter = serde_json::from_value(json!({
            "meterNumber": "M1", "installationId": "A-1", "commodity": "GAS", "unit": "m3",
            "registers": [{"code": "SINGLE", "obis": "7-0:3.0.0", "digits": 5, "decimals": 3}]
        }))
        .unwrap();
        let check = |register: &str, value: &str| {
            let r = MeterReading {
                meter_number: MeterNumber::parse("M1").unwrap(),
                register: crate::ids::RegisterCode::parse(register).unwrap(),
                date: time::macros::date!(2026 - 12 - 01),
                value: value.parse().unwrap(),
                source: ReadingSource::Customer,
            };
            check_reading_value(&meter, &r).map_err(|e| (e.key, e.field))
        };
        assert!(check("SINGLE", "99999.999").is_ok());
        assert!(check("SINGLE", "0").is_ok());
        assert_eq!(check("SINGLE", "100000"), Err(("M1/SINGLE/2026-12-01".into(), "value".into())));
        assert_eq!(check("SINGLE", "1.0001"), Err(("M1/SINGLE/2026-12-01".into(), "value".into())));
        assert_eq!(check("SINGLE", "-1"), Err(("M1/SINGLE/2026-12-01".into(), "value".into())));
        assert_eq!(check("HT", "1"), Err(("M1/HT/2026-12-01".into(), "register".into())));
    }

    #[test]
    fn a_contract_may_end_on_the_day_it_starts_but_not_before() {
        let mut c: Contract = parse_export(DEMO).unwrap().contracts[0].entity.clone();
        c.end_date = Some(c.start_date);
        assert!(check_contract(&c).is_ok());
        c.end_date = c.start_date.previous_day();
        assert_eq!(check_contract(&c).unwrap_err().field, "endDate");
        c.end_date = c.start_date.next_day();
        assert!(check_contract(&c).is_ok());
        assert_eq!(
            refused(|d| d["contracts"][0]["endDate"] = "2021-02-28".into()),
            t("contract", "5000001", "endDate")
        );
    }

    #[test]
    fn direct_debit_needs_account_and_mandate_and_every_iban_is_checked() {
        assert_eq!(
            refused(|d| d["contractAccounts"][0]["mandate"] = Value::Null),
            t("contractAccount", "800000001", "bankAccount")
        );
        assert_eq!(
            refused(|d| d["contractAccounts"][0]["bankAccount"] = Value::Null),
            t("contractAccount", "800000001", "bankAccount")
        );
        assert_eq!(
            refused(|d| d["contractAccounts"][1]["payoutAccount"]["iban"] = "DE64850503003120123457".into()),
            t("contractAccount", "800000002", "payoutAccount.iban")
        );
        let s = parse_export(DEMO).unwrap();
        let (record, details) = (&s.accounts[2], &s.bank_details[2]);
        assert_eq!((record.account_number.as_str(), record.partner_number.as_str()), ("800000003", "1000002"));
        assert_eq!(record.bill_recipient.as_ref().unwrap().name, "Hausverwaltung Elbblick GmbH");
        assert_eq!((details.account_number.as_str(), details.partner_number.as_str()), ("800000003", "1000002"));
        assert_eq!(details.payment_method, PaymentMethod::SepaDirectDebit);
        assert_eq!(details.mandate.as_ref().unwrap().reference, "EVI-800000003-01");
        assert_eq!(details.bank_account.as_ref().unwrap().iban, "DE64850503003120123456");
        assert_eq!(s.bank_details[1].payout_account.as_ref().unwrap().iban, "DE64850503003120123456");
        assert_eq!((record.pending_change, details.pending_change), (None, None));
    }

    #[test]
    fn code_lists_have_unique_non_empty_keys_and_labels() {
        let e = broken(|d| d["codeLists"]["salutations"][1]["key"] = "HERR".into());
        assert_eq!((e.entity, e.key.as_str(), e.field.as_str()), ("codeList", "salutations/HERR", "key"));
        for (field, value) in [("key", " "), ("label", "")] {
            let e = broken(|d| d["codeLists"]["salutations"][0][field] = value.into());
            assert_eq!((e.entity, e.key.as_str(), e.field.as_str()), ("codeList", "salutations", "key"), "{field}");
        }
        let s = parse_export(DEMO).unwrap();
        let other = s.code_values.iter().find(|c| c.list_name == "messageReasons" && c.key == "OTHER").unwrap();
        assert_eq!((other.label.as_str(), other.route_to.as_deref()), ("Sonstiges", None));
        assert_eq!(s.code_values.iter().filter(|c| c.list_name == "terminationReasons").count(), 5);
    }

    #[test]
    fn documents_are_what_their_media_type_says_and_at_most_10_mb() {
        use base64::Engine;
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(check_document_content(&encode(b"%PDF-1.7 x"), "application/pdf").unwrap(), b"%PDF-1.7 x");
        assert!(check_document_content(&encode(b"\x89PNG\r\n"), "image/png").is_ok());
        assert!(check_document_content(&encode(b"\xFF\xD8\xFF\xE0"), "image/jpeg").is_ok());
        assert!(check_document_content(&encode(b"\x89PNG\r\n"), "image/jpeg").is_err());
        assert_eq!(
            check_document_content(&encode(b"%PDF"), "text/html").unwrap_err(),
            "media type text/html is not accepted"
        );
        assert!(check_document_content("not base64!", "application/pdf").unwrap_err().starts_with("not base64"));
        let mut largest = b"%PDF".to_vec();
        largest.resize(10 * 1024 * 1024, b' ');
        assert_eq!(MAX_DOCUMENT_BYTES, largest.len());
        assert!(check_document_content(&encode(&largest), "application/pdf").is_ok());
        largest.push(b' ');
        assert_eq!(check_document_content(&encode(&largest), "application/pdf").unwrap_err(), "larger than 10 MB");
    }

    #[test]
    fn an_export_without_lists_is_empty_and_lists_must_be_lists() {
        let s = parse_export(r#"{"format": "evi-export/1"}"#).unwrap();
        assert!(s.partners.is_empty() && s.code_values.is_empty());
        let e = parse_export(r#"{"format": "evi-export/1", "meters": {}}"#).unwrap_err();
        assert_eq!((e.entity, e.field.as_str()), ("meter", "meters"));
        let e = parse_export(r#"{"format": "evi-export/1", "codeLists": []}"#).unwrap_err();
        assert_eq!((e.entity, e.field.as_str()), ("codeList", "codeLists"));
        assert_eq!(parse_export("{").unwrap_err().entity, "export");
        // A record without its key field is named by its position.
        let e = broken(|d| {
            d["contracts"][1].as_object_mut().unwrap().remove("contractNumber");
        });
        assert_eq!((e.entity, e.key.as_str()), ("contract", "#1"));
    }
}

#[cfg(test)]
mod forecast_tests {
    use super::{annual_consumption, parse_export, typical_annual_consumption};
    use crate::entities::Commodity;
    use rust_decimal::Decimal;
    use time::macros::date;

    #[test]
    fn the_forecast_is_the_last_years_consumption_from_the_reading_history() {
        let year = [(date!(2025 - 11 - 30), 26335), (date!(2026 - 05 - 31), 28240), (date!(2026 - 11 - 30), 29735)];
        let history = |h: &[(time::Date, i64)]| h.iter().map(|(d, v)| (*d, Decimal::from(*v))).collect::<Vec<_>>();
        assert_eq!(annual_consumption(history(&year).into_iter()), Some(Decimal::from(3400)));
        // Older readings do not count; half a year is scaled to a year.
        let half = [(date!(2020 - 01 - 01), 1), (date!(2026 - 05 - 31), 28240), (date!(2026 - 11 - 30), 29735)];
        assert_eq!(annual_consumption(history(&half).into_iter()), Some(Decimal::from(2982)));
        // Too little history, or a counter that went down: none.
        assert_eq!(annual_consumption(history(&year[1..2]).into_iter()), None);
        let short = [(date!(2026 - 10 - 31), 29372), (date!(2026 - 11 - 30), 29735)];
        assert_eq!(annual_consumption(history(&short).into_iter()), None);
        let exchanged = [(date!(2025 - 11 - 30), 26335), (date!(2026 - 05 - 31), 120), (date!(2026 - 11 - 30), 1615)];
        assert_eq!(annual_consumption(history(&exchanged).into_iter()), None);
        assert_eq!(annual_consumption(std::iter::empty()), None);
    }

    #[test]
    fn without_forecast_or_history_the_products_customer_type_gives_the_typical_consumption() {
        let t = |c, ty, r, n| typical_annual_consumption(c, ty, r, n).map(|d| d.normalize().to_string());
        assert_eq!(t(Commodity::Electricity, "PRIVATE", "SINGLE", 1).as_deref(), Some("3500"));
        assert_eq!(t(Commodity::Electricity, "PRIVATE", "HT", 2).as_deref(), Some("2100"));
        assert_eq!(t(Commodity::Electricity, "PRIVATE", "NT", 2).as_deref(), Some("1400"));
        assert_eq!(t(Commodity::Electricity, "BUSINESS", "SINGLE", 1).as_deref(), Some("15000"));
        assert_eq!(t(Commodity::Gas, "PRIVATE", "SINGLE", 1).as_deref(), Some("2000"));
        assert_eq!(t(Commodity::Gas, "AGRICULTURE", "SINGLE", 1), None);

        // The demo export with the bakery's meter (business electricity) new: no readings,
        // no forecast from the CRM.
        let mut doc: serde_json::Value = serde_json::from_str(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        doc["meterReadings"].as_array_mut().unwrap().retain(|r| r["meterNumber"] != "1APA0098765432");
        for m in doc["meters"].as_array_mut().unwrap() {
            for r in m["registers"].as_array_mut().unwrap() {
                r.as_object_mut().unwrap().remove("expectedAnnualConsumption");
            }
        }
        let s = parse_export(&doc.to_string()).unwrap();
        let bakery = s.meters.iter().find(|m| m.meter.meter_number.as_str() == "1APA0098765432").unwrap();
        let forecasts: Vec<String> = bakery
            .meter
            .registers
            .iter()
            .map(|r| r.expected_annual_consumption.unwrap().normalize().to_string())
            .collect();
        assert_eq!(forecasts, ["9000", "6000"]);
        // A meter with history keeps the figure its readings show.
        let erika = s.meters.iter().find(|m| m.meter.meter_number.as_str() == "1EMH0012345678").unwrap();
        assert_eq!(erika.meter.registers[0].expected_annual_consumption.unwrap().normalize().to_string(), "3400");
    }
}
