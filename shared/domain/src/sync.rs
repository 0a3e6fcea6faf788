//! Inbound sync: what the CRM (EVI) tells the portal on the inbound queue — an entity
//! created or changed, an entity deleted, or what became of a request — parsed and checked
//! with the same entity types and rules as the initial load (`export`), and decided into
//! the writes that apply it. Every entity message carries a version that grows with each
//! change of the entity: a write is applied only over an older version, so a late or
//! repeated message changes nothing.

use crate::entities::{
    BusinessPartner, Contract, ContractAccount, Document, Installation, InstallmentPlan, MeterReading, PortalLogin,
    Product,
};
use crate::export::{ImportError, Owned, check_contract, check_document_content, split_account};
use crate::ids::{CustomerNumber, InstallationId, MeterNumber, RegisterCode, RequestId};
use crate::requests::RequestKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// The mirrored entity types the sync maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntityType {
    BusinessPartner,
    ContractAccount,
    Contract,
    Installation,
    /// A meter with its registers; `removedOn` ends it (a meter exchange: the new meter
    /// comes as a meter of its own on the same installation).
    Meter,
    InstallmentPlan,
    MeterReading,
    Document,
    Product,
    PortalLogin,
    /// One entry of a code list (Schlüsselwert): message reasons with their routing,
    /// termination reasons with their notice rules, …
    CodeListEntry,
    /// What the documents inbox shows (categories, period, another attribute); deleted, the
    /// deployment's template parameters apply again.
    InboxConfiguration,
}

/// What EVI reports about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestStatus {
    Processed,
    Rejected,
}

/// An inbound message (`schemas/events/crm-*.schema.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "messageType", deny_unknown_fields)]
pub enum InboundMessage {
    #[serde(rename = "crm.entity-changed", rename_all = "camelCase")]
    EntityChanged {
        message_id: String,
        #[serde(with = "time::serde::rfc3339")]
        occurred_at: OffsetDateTime,
        entity_type: EntityType,
        version: u64,
        /// The customer the entity belongs to (for entities keyed by customer).
        #[serde(default)]
        partner_number: Option<CustomerNumber>,
        entity: Value,
    },
    #[serde(rename = "crm.entity-deleted", rename_all = "camelCase")]
    EntityDeleted {
        message_id: String,
        #[serde(with = "time::serde::rfc3339")]
        occurred_at: OffsetDateTime,
        entity_type: EntityType,
        version: u64,
        #[serde(default)]
        partner_number: Option<CustomerNumber>,
        key: String,
    },
    #[serde(rename = "crm.request-status-changed", rename_all = "camelCase")]
    RequestStatusChanged {
        message_id: String,
        #[serde(with = "time::serde::rfc3339")]
        occurred_at: OffsetDateTime,
        request_id: RequestId,
        request_type: RequestKind,
        status: RequestStatus,
        #[serde(default)]
        reason: Option<String>,
    },
}

/// Mirror tables the sync writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    BusinessPartners,
    ContractAccounts,
    BankDetails,
    Contracts,
    Installations,
    InstallmentPlans,
    Documents,
    Products,
    CodeLists,
    Meters,
}

/// One write that applies (part of) an inbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncWrite {
    /// The whole item, unless the stored one has this version or a newer one.
    Put { table: Table, item: Map<String, Value> },
    /// Removes the item, unless the stored one is newer.
    Delete { table: Table, key: Vec<(&'static str, String)> },
    /// A meter as the CRM has it now: its registers and removal date replace the mirror's,
    /// its last readings stay; a new meter takes its installation's contract.
    Meter { owner: CustomerNumber, meter: Box<crate::entities::Meter> },
    /// A reading: stored in the history, and the meter's last reading if it is newer.
    Reading { owner: CustomerNumber, reading: MeterReading },
    /// A reading the CRM deleted: out of the history; if it was the register's last
    /// reading, the latest one left becomes the last.
    DeleteReading { owner: CustomerNumber, meter: MeterNumber, register: RegisterCode, date: time::Date },
    /// A document's file, stored before its record.
    File { owner: CustomerNumber, document: Box<Document>, bytes: Vec<u8> },
    /// A portal login's status, customer numbers and e-mail (never its password).
    Login(Box<PortalLogin>),
    /// A contract's end reaches the meters of its installation: the customer is supplied
    /// through them until then (readings dated later are refused, the views drop them).
    SupplyEnd { owner: CustomerNumber, installation_id: InstallationId, end: Option<time::Date> },
    Status {
        request_id: RequestId,
        kind: RequestKind,
        status: RequestStatus,
        reason: Option<String>,
        at: OffsetDateTime,
    },
}

/// A message that can never be applied: it goes to the dead-letter queue with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

impl From<ImportError> for Unusable {
    fn from(e: ImportError) -> Self {
        // Entity, key and field, never a value: the reason is logged.
        Self(format!("{} {}: field `{}` refused", e.entity, e.key, e.field))
    }
}

/// A decided message: its id (for logs), the entity version and the writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub message_id: String,
    pub version: u64,
    pub writes: Vec<SyncWrite>,
}

fn entity<T: serde::de::DeserializeOwned>(entity_type: EntityType, value: Value) -> Result<T, Unusable> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| Unusable(format!("{entity_type:?}: field `{}` does not fit the export format", e.path())))
}

fn item<T: Serialize>(value: &T) -> Result<Map<String, Value>, Unusable> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Unusable("entity does not map to an item".into())),
    }
}

fn owner(partner: Option<CustomerNumber>, entity_type: EntityType) -> Result<CustomerNumber, Unusable> {
    partner.ok_or_else(|| Unusable(format!("{entity_type:?} needs partnerNumber")))
}

/// Parses a message body and decides its writes.
pub fn decide(body: &str) -> Result<Decision, Unusable> {
    let message: InboundMessage = serde_json::from_str(body).map_err(|e| {
        // serde's message names the field or the problem, not the value.
        Unusable(format!("not an inbound message (line {}, column {}, {:?} error)", e.line(), e.column(), e.classify()))
    })?;
    match message {
        InboundMessage::EntityChanged { message_id, entity_type, version, partner_number, entity: value, .. } => {
            let writes = changed(entity_type, partner_number, value)?;
            Ok(Decision { message_id, version, writes })
        }
        InboundMessage::EntityDeleted { message_id, entity_type, version, partner_number, key, .. } => {
            let writes = deleted(entity_type, partner_number, key)?;
            Ok(Decision { message_id, version, writes })
        }
        InboundMessage::RequestStatusChanged { message_id, occurred_at, request_id, request_type, status, reason } => {
            let reason = reason.map(|r| r.chars().take(500).collect());
            Ok(Decision {
                message_id,
                version: 0,
                writes: vec![SyncWrite::Status { request_id, kind: request_type, status, reason, at: occurred_at }],
            })
        }
    }
}

fn changed(t: EntityType, partner: Option<CustomerNumber>, value: Value) -> Result<Vec<SyncWrite>, Unusable> {
    let put = |table: Table, item: Map<String, Value>| SyncWrite::Put { table, item };
    Ok(match t {
        EntityType::BusinessPartner => vec![put(Table::BusinessPartners, item(&entity::<BusinessPartner>(t, value)?)?)],
        EntityType::ContractAccount => {
            let (record, details) = split_account(entity::<ContractAccount>(t, value)?)?;
            vec![put(Table::ContractAccounts, item(&record)?), put(Table::BankDetails, item(&details)?)]
        }
        EntityType::Contract => {
            let contract: Contract = entity(t, value)?;
            check_contract(&contract)?;
            let owner = owner(partner, t)?;
            let supply_end = SyncWrite::SupplyEnd {
                owner: owner.clone(),
                installation_id: contract.installation_id.clone(),
                end: contract.end_date,
            };
            vec![put(Table::Contracts, item(&Owned { partner_number: owner, entity: contract })?), supply_end]
        }
        EntityType::Installation => {
            let installation: Installation = entity(t, value)?;
            vec![put(Table::Installations, item(&Owned { partner_number: owner(partner, t)?, entity: installation })?)]
        }
        EntityType::Meter => {
            let meter: crate::entities::Meter = entity(t, value)?;
            crate::export::check_meter(&meter)?;
            vec![SyncWrite::Meter { owner: owner(partner, t)?, meter: Box::new(meter) }]
        }
        EntityType::InstallmentPlan => {
            let plan: InstallmentPlan = entity(t, value)?;
            vec![put(Table::InstallmentPlans, item(&Owned { partner_number: owner(partner, t)?, entity: plan })?)]
        }
        EntityType::MeterReading => {
            vec![SyncWrite::Reading { owner: owner(partner, t)?, reading: entity(t, value)? }]
        }
        EntityType::Document => {
            let document: Document = entity(t, value)?;
            crate::documents::check_attributes(&document.attributes)
                .map_err(|m| Unusable(format!("document {}: attributes: {m}", document.document_id)))?;
            let mut writes = Vec::new();
            if let Some(content) = &document.content_base64 {
                let bytes = check_document_content(content, &document.media_type)
                    .map_err(|m| Unusable(format!("document {}: contentBase64: {m}", document.document_id)))?;
                writes.push(SyncWrite::File {
                    owner: document.partner_number.clone(),
                    document: Box::new(document.clone()),
                    bytes,
                });
            }
            writes.push(put(Table::Documents, item(&document)?));
            writes
        }
        EntityType::Product => vec![put(Table::Products, item(&entity::<Product>(t, value)?)?)],
        EntityType::CodeListEntry => vec![put(Table::CodeLists, item(&code_list_entry(value)?)?)],
        EntityType::InboxConfiguration => {
            let policy: crate::documents::InboxPolicy = entity(t, value)?;
            policy.check().map_err(|m| Unusable(format!("inboxConfiguration: {m}")))?;
            vec![put(Table::CodeLists, inbox_setting(&policy)?)]
        }
        EntityType::PortalLogin => vec![SyncWrite::Login(Box::new(entity(t, value)?))],
    })
}

fn deleted(t: EntityType, partner: Option<CustomerNumber>, key: String) -> Result<Vec<SyncWrite>, Unusable> {
    let owned = |table: Table, sort: &'static str| -> Result<SyncWrite, Unusable> {
        Ok(SyncWrite::Delete {
            table,
            key: vec![("partnerNumber", owner(partner.clone(), t)?.to_string()), (sort, key.clone())],
        })
    };
    Ok(match t {
        EntityType::BusinessPartner => {
            vec![SyncWrite::Delete { table: Table::BusinessPartners, key: vec![("partnerNumber", key)] }]
        }
        EntityType::ContractAccount => {
            vec![owned(Table::ContractAccounts, "accountNumber")?, owned(Table::BankDetails, "accountNumber")?]
        }
        EntityType::Contract => vec![owned(Table::Contracts, "contractNumber")?],
        EntityType::Installation => vec![owned(Table::Installations, "installationId")?],
        EntityType::Meter => vec![owned(Table::Meters, "meterNumber")?],
        EntityType::InstallmentPlan => vec![owned(Table::InstallmentPlans, "accountNumber")?],
        EntityType::Document => vec![owned(Table::Documents, "documentId")?],
        EntityType::Product => vec![SyncWrite::Delete { table: Table::Products, key: vec![("productId", key)] }],
        EntityType::CodeListEntry => {
            let Some((list, entry)) = key.split_once('#').filter(|(l, e)| !l.is_empty() && !e.is_empty()) else {
                return Err(Unusable("codeListEntry key is <listName>#<key>".into()));
            };
            vec![SyncWrite::Delete {
                table: Table::CodeLists,
                key: vec![("listName", list.to_owned()), ("key", entry.to_owned())],
            }]
        }
        EntityType::MeterReading => {
            // The key is the reading's: `<meterNumber>#<register>#<date>`.
            let parts: Vec<&str> = key.split('#').collect();
            let [meter, register, date] = parts.as_slice() else {
                return Err(Unusable("meterReading key is <meterNumber>#<register>#<YYYY-MM-DD>".into()));
            };
            let refused = |field: &str| Unusable(format!("meterReading key: {field} does not parse"));
            vec![SyncWrite::DeleteReading {
                owner: owner(partner, t)?,
                meter: MeterNumber::parse(meter).map_err(|_| refused("meterNumber"))?,
                register: RegisterCode::parse(register).map_err(|_| refused("register"))?,
                date: time::Date::parse(date, crate::entities::iso_date::FORMAT).map_err(|_| refused("date"))?,
            }]
        }
        EntityType::InboxConfiguration => {
            if key != crate::documents::INBOX_SETTING {
                return Err(Unusable("inboxConfiguration key is inbox".into()));
            }
            vec![SyncWrite::Delete { table: Table::CodeLists, key: settings_key() }]
        }
        EntityType::PortalLogin => {
            return Err(Unusable(format!("{t:?} is never deleted (a login gets status GELÖSCHT)")));
        }
    })
}

fn settings_key() -> Vec<(&'static str, String)> {
    vec![("listName", crate::documents::SETTINGS_LIST.to_owned()), ("key", crate::documents::INBOX_SETTING.to_owned())]
}

/// The inbox configuration as the mirror keeps it: a settings entry of the code-list table.
pub fn inbox_setting(policy: &crate::documents::InboxPolicy) -> Result<Map<String, Value>, Unusable> {
    let mut item = item(policy)?;
    for (name, value) in settings_key() {
        item.insert(name.to_owned(), Value::String(value));
    }
    Ok(item)
}

/// A code list entry as the export's code lists hold it, with the list it belongs to.
fn code_list_entry(value: Value) -> Result<crate::entities::CodeValue, Unusable> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Entry {
        list_name: String,
        key: String,
        label: String,
        #[serde(default)]
        route_to: Option<String>,
        #[serde(default)]
        termination_rule: Option<crate::entities::TerminationRule>,
    }
    let e: Entry = entity(EntityType::CodeListEntry, value)?;
    let name_ok = |s: &str| (1..=40).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok(&e.list_name) || !name_ok(&e.key) || e.label.trim().is_empty() || e.label.chars().count() > 200 {
        return Err(Unusable("codeListEntry: listName, key (1-40 letters, digits, _) and a label are required".into()));
    }
    Ok(crate::entities::CodeValue {
        list_name: e.list_name,
        key: e.key,
        label: e.label,
        route_to: e.route_to,
        termination_rule: e.termination_rule,
    })
}

/// What the customer calls a request, in the outcome mail.
fn request_name(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::MeterReadingSubmission => "Ihre Zählerstandsmeldung",
        RequestKind::PortalRegistration => "Ihre Registrierung im Kundenportal",
        RequestKind::AccountDeletion => "Die Löschung Ihres Benutzerkontos",
        RequestKind::CustomerNumberAdded => "Die weitere Kundennummer für Ihren Zugang",
        RequestKind::ContactDataChange => "Die Änderung Ihrer Kommunikationsdaten",
        RequestKind::CustomerDataChange => "Die Änderung Ihrer Kundendaten",
        RequestKind::BankDetailsChange => "Die Änderung Ihrer Bankverbindung",
        RequestKind::MandateRevocation => "Der Widerruf Ihres SEPA-Mandats",
        RequestKind::BillingAddressChange => "Die Änderung Ihrer Rechnungsanschrift",
        RequestKind::InstallmentChange => "Ihre Abschlagsänderung",
        RequestKind::ContractTermination => "Ihre Kündigung",
        RequestKind::Message => "Ihre Nachricht",
        RequestKind::DocumentUpload => "Ihr hochgeladenes Dokument",
    }
}

/// The mail that tells a customer who consented to notifications what became of a request:
/// subject and text, naming the request (type, number, date) and, for a rejection, the
/// CRM's reason.
pub fn outcome_mail(
    kind: RequestKind,
    request_id: &RequestId,
    submitted_on: &str,
    status: RequestStatus,
    reason: Option<&str>,
) -> (String, String) {
    let name = request_name(kind);
    let date = submitted_on.get(..10).unwrap_or(submitted_on);
    match status {
        RequestStatus::Processed => (
            format!("{name} ist bearbeitet"),
            format!(
                "Guten Tag,\n\n{name} vom {date} (Vorgang {request_id}) ist bearbeitet.\n\n\
                 Ihre Daten im Kundenportal zeigen den neuen Stand.\n"
            ),
        ),
        RequestStatus::Rejected => (
            format!("{name} konnte nicht ausgeführt werden"),
            format!(
                "Guten Tag,\n\n{name} vom {date} (Vorgang {request_id}) konnte nicht ausgeführt werden.\n\n\
                 Grund: {}\n\nDas Kundenportal zeigt wieder Ihre bisherigen Daten. Bei Fragen antworten Sie \
                 bitte über das Kontaktformular.\n",
                reason.unwrap_or("ohne Angabe")
            ),
        ),
    }
}

/// An example of each inbound message type (also in `schemas/events/`), for tests and docs.
pub fn example_status(request_id: RequestId, kind: RequestKind) -> Value {
    json!({
        "messageType": "crm.request-status-changed",
        "messageId": "b7c1e2d4-0f3a-4e5b-9c6d-7e8f9a0b1c2d",
        "occurredAt": "2026-12-01T10:15:00Z",
        "requestId": request_id,
        "requestType": kind,
        "status": "PROCESSED",
        "reason": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_list_entries_follow_the_crm_with_their_routing_and_rules() {
        let change = |entity: Value| {
            json!({
                "messageType": "crm.entity-changed", "messageId": "cl-1", "occurredAt": "2026-12-01T10:00:00Z",
                "entityType": "codeListEntry", "version": 3, "entity": entity,
            })
            .to_string()
        };
        let d = decide(&change(json!({
            "listName": "terminationReasons", "key": "MOVE_OUT", "label": "Umzug",
            "terminationRule": {"earliestDaysFromToday": -14, "moveOutDateRequired": true}
        })))
        .unwrap();
        let [SyncWrite::Put { table: Table::CodeLists, item }] = &d.writes[..] else { panic!("{:?}", d.writes) };
        assert_eq!(item["listName"], "terminationReasons");
        assert_eq!(item["terminationRule"]["earliestDaysFromToday"], -14);
        let d = decide(&change(
            json!({"listName": "messageReasons", "key": "SOLAR", "label": "Solaranlage", "routeTo": "technik"}),
        ))
        .unwrap();
        let [SyncWrite::Put { item, .. }] = &d.writes[..] else { panic!() };
        assert_eq!(item["routeTo"], "technik");
        for bad in [
            json!({"listName": "messageReasons", "key": "X", "label": " "}),
            json!({"listName": "message reasons", "key": "X", "label": "L"}),
            json!({"listName": "messageReasons", "key": "X", "label": "L", "extra": 1}),
        ] {
            assert!(decide(&change(bad.clone())).is_err(), "{bad}");
        }
        let deleted = json!({
            "messageType": "crm.entity-deleted", "messageId": "cl-2", "occurredAt": "2026-12-01T10:00:00Z",
            "entityType": "codeListEntry", "version": 4, "key": "messageReasons#SOLAR",
        });
        assert_eq!(
            decide(&deleted.to_string()).unwrap().writes,
            [SyncWrite::Delete {
                table: Table::CodeLists,
                key: vec![("listName", "messageReasons".into()), ("key", "SOLAR".into())]
            }]
        );
    }

    #[test]
    fn the_outcome_mail_names_the_request_and_a_rejections_reason() {
        let id = RequestId::new_random();
        let (subject, text) = outcome_mail(
            RequestKind::BankDetailsChange,
            &id,
            "2026-12-01T10:00:00.000Z",
            RequestStatus::Rejected,
            Some("Das Konto ist erloschen."),
        );
        assert_eq!(subject, "Die Änderung Ihrer Bankverbindung konnte nicht ausgeführt werden");
        assert!(text.contains(&format!("vom 2026-12-01 (Vorgang {id})")), "{text}");
        assert!(text.contains("Grund: Das Konto ist erloschen."), "{text}");
        let (subject, text) =
            outcome_mail(RequestKind::Message, &id, "2026-12-01T10:00:00.000Z", RequestStatus::Processed, None);
        assert_eq!(subject, "Ihre Nachricht ist bearbeitet");
        assert!(!text.contains("Grund"), "{text}");
    }

    #[test]
    fn entity_changes_use_the_export_format_and_its_rules() {
        let body = json!({
            "messageType": "crm.entity-changed", "messageId": "m-1", "occurredAt": "2026-12-01T10:00:00Z",
            "entityType": "contractAccount", "version": 3,
            "entity": {
                "accountNumber": "800000005", "partnerNumber": "1000004",
                "billingAddress": {"street": "A", "houseNumber": "1", "postalCode": "10115", "city": "Berlin", "country": "DE"},
                "billRecipient": null, "paymentMethod": "BANK_TRANSFER",
                "bankAccount": {"holder": "K", "iban": "DE89370400440532013001", "bic": null, "bankName": null},
                "payoutAccount": null, "mandate": null
            }
        });
        let refused = decide(&body.to_string()).unwrap_err();
        assert!(refused.0.contains("bankAccount.iban") && !refused.0.contains("DE89"), "{refused}");

        let mut ok = body.clone();
        ok["entity"]["bankAccount"]["iban"] = json!("DE89370400440532013000");
        let d = decide(&ok.to_string()).unwrap();
        assert_eq!(d.version, 3);
        assert!(matches!(
            &d.writes[..],
            [SyncWrite::Put { table: Table::ContractAccounts, .. }, SyncWrite::Put { table: Table::BankDetails, .. }]
        ));

        let mut unknown = ok.clone();
        unknown["entity"]["extra"] = json!(1);
        assert!(decide(&unknown.to_string()).is_err(), "unknown fields are refused like in the export");
        let mut unknown = ok.clone();
        unknown["extra"] = json!(1);
        assert!(decide(&unknown.to_string()).is_err(), "and in the message");
        assert!(decide("{not json").is_err());

        // A contract's end also reaches the meters of its installation.
        let contract = json!({
            "messageType": "crm.entity-changed", "messageId": "c-1", "occurredAt": "2026-12-01T10:00:00Z",
            "entityType": "contract", "version": 4, "partnerNumber": "1000001",
            "entity": {
                "contractNumber": "5000001", "accountNumber": "800000001", "productId": "HEIZSTROM-HTNT",
                "startDate": "2021-03-01", "endDate": "2026-11-30", "installationId": "A-7000001",
                "consumptionPoint": {"maloId": "51234567895", "address": {"street": "Heidestraße", "houseNumber": "17", "postalCode": "51147", "city": "Köln", "country": "DE"}}
            }
        });
        let d = decide(&contract.to_string()).unwrap();
        let [SyncWrite::Put { table: Table::Contracts, .. }, SyncWrite::SupplyEnd { owner, installation_id, end }] =
            &d.writes[..]
        else {
            panic!("{:?}", d.writes)
        };
        assert_eq!(
            (owner.as_str(), installation_id.as_str(), end.map(crate::entities::iso_date::format)),
            ("1000001", "A-7000001", Some("2026-11-30".to_owned()))
        );
        assert!(decide(&json!({"messageType": "crm.entity-changed"}).to_string()).is_err());
    }

    const DEMO: &str = include_str!("../../../fixtures/crm-demo.json");

    fn demo(list: &str, i: usize) -> Value {
        serde_json::from_str::<Value>(DEMO).unwrap()[list][i].clone()
    }

    fn changed_message(entity_type: &str, partner: Option<&str>, entity: Value) -> String {
        json!({
            "messageType": "crm.entity-changed", "messageId": "m-1", "occurredAt": "2026-12-01T10:00:00Z",
            "entityType": entity_type, "version": 7, "partnerNumber": partner, "entity": entity,
        })
        .to_string()
    }

    fn deleted_message(entity_type: &str, partner: Option<&str>, key: &str) -> String {
        json!({
            "messageType": "crm.entity-deleted", "messageId": "m-2", "occurredAt": "2026-12-01T10:00:00Z",
            "entityType": entity_type, "version": 8, "partnerNumber": partner, "key": key,
        })
        .to_string()
    }

    fn put_table(w: &SyncWrite) -> (Table, Map<String, Value>) {
        match w {
            SyncWrite::Put { table, item } => (*table, item.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_entity_type_is_put_into_its_table_with_its_owner() {
        let one = |t: &str, partner: Option<&str>, entity: Value| {
            let d = decide(&changed_message(t, partner, entity)).unwrap();
            assert_eq!((d.message_id.as_str(), d.version), ("m-1", 7));
            d.writes
        };
        let w = one("businessPartner", None, demo("businessPartners", 0));
        assert_eq!(put_table(&w[0]).0, Table::BusinessPartners);
        assert_eq!(put_table(&w[0]).1["lastName"], "Mustermann");
        for (t, list, table) in [
            ("contract", "contracts", Table::Contracts),
            ("installation", "installations", Table::Installations),
            ("installmentPlan", "installmentPlans", Table::InstallmentPlans),
        ] {
            let w = one(t, Some("1000001"), demo(list, 0));
            let (got, item) = put_table(&w[0]);
            assert_eq!((got, item["partnerNumber"].as_str()), (table, Some("1000001")), "{t}");
            let refused = decide(&changed_message(t, None, demo(list, 0))).unwrap_err();
            assert!(refused.0.ends_with("needs partnerNumber"), "{refused}");
        }
        let w = one("product", None, demo("products", 0));
        assert_eq!(put_table(&w[0]).0, Table::Products);
        let w = one("meterReading", Some("1000001"), demo("meterReadings", 0));
        assert!(
            matches!(&w[..], [SyncWrite::Reading { owner, reading }] if owner.as_str() == "1000001" && reading.register.as_str() == "HT")
        );
        let w = one("portalLogin", None, demo("portalLogins", 0));
        assert!(matches!(&w[..], [SyncWrite::Login(l)] if l.login_id.as_str() == "L-0000001"));
    }

    #[test]
    fn a_meter_follows_the_crm_with_its_registers_and_removal_under_the_export_rules() {
        let mut old = demo("meters", 0);
        old["removedOn"] = json!("2026-12-10");
        let d = decide(&changed_message("meter", Some("1000001"), old.clone())).unwrap();
        let [SyncWrite::Meter { owner, meter }] = &d.writes[..] else { panic!("{:?}", d.writes) };
        assert_eq!(
            (owner.as_str(), meter.meter_number.as_str(), meter.removed_on.map(crate::entities::iso_date::format)),
            ("1000001", "1EMH0012345678", Some("2026-12-10".to_owned()))
        );
        assert!(decide(&changed_message("meter", None, old.clone())).unwrap_err().0.ends_with("needs partnerNumber"));
        let mut twice = old.clone();
        twice["registers"][1]["code"] = json!("HT");
        assert_eq!(
            decide(&changed_message("meter", Some("1000001"), twice)).unwrap_err().0,
            "meter 1EMH0012345678: field `registers.code` refused"
        );
        let mut none = old;
        none["registers"] = json!([]);
        assert!(decide(&changed_message("meter", Some("1000001"), none)).is_err());
        assert_eq!(
            decide(&deleted_message("meter", Some("1000001"), "1EMH0012345678")).unwrap().writes,
            [SyncWrite::Delete {
                table: Table::Meters,
                key: vec![("partnerNumber", "1000001".into()), ("meterNumber", "1EMH0012345678".into())]
            }]
        );
    }

    #[test]
    fn a_documents_file_comes_before_its_record_and_must_be_what_it_says() {
        let d = decide(&changed_message("document", None, demo("documents", 0))).unwrap();
        let [SyncWrite::File { owner, document, bytes }, SyncWrite::Put { table: Table::Documents, item }] =
            &d.writes[..]
        else {
            panic!("{:?}", d.writes)
        };
        assert_eq!((owner.as_str(), document.document_id.as_str()), ("1000001", "D-2024-000101"));
        assert!(bytes.starts_with(b"%PDF"));
        assert!(!item.contains_key("contentBase64"), "the file is not part of the record");
        let mut without = demo("documents", 0);
        without.as_object_mut().unwrap().remove("contentBase64");
        let d = decide(&changed_message("document", None, without)).unwrap();
        assert!(matches!(&d.writes[..], [SyncWrite::Put { table: Table::Documents, .. }]));
        let mut fake = demo("documents", 0);
        fake["contentBase64"] = json!("aGVsbG8=");
        let refused = decide(&changed_message("document", None, fake)).unwrap_err();
        assert_eq!(refused.0, "document D-2024-000101: contentBase64: the content is not application/pdf");
    }

    #[test]
    fn the_export_rules_apply_and_refusals_name_fields_not_values() {
        let mut ended = demo("contracts", 0);
        ended["endDate"] = json!("2020-01-01");
        assert_eq!(
            decide(&changed_message("contract", Some("1000001"), ended)).unwrap_err().0,
            "contract 5000001: field `endDate` refused"
        );
        let mut bad = demo("businessPartners", 0);
        bad["partnerNumber"] = json!("12ab");
        let refused = decide(&changed_message("businessPartner", None, bad)).unwrap_err();
        assert_eq!(refused.0, "BusinessPartner: field `partnerNumber` does not fit the export format");
    }

    #[test]
    fn deletions_name_the_keys_and_some_entities_are_never_deleted() {
        let delete = |t: &str, partner: Option<&str>, key: &str| decide(&deleted_message(t, partner, key));
        let d = delete("businessPartner", None, "1000001").unwrap();
        assert_eq!(d.version, 8);
        assert_eq!(
            d.writes,
            [SyncWrite::Delete { table: Table::BusinessPartners, key: vec![("partnerNumber", "1000001".into())] }]
        );
        let owned = |table, sort: &'static str, key: &str| SyncWrite::Delete {
            table,
            key: vec![("partnerNumber", "1000001".into()), (sort, key.into())],
        };
        assert_eq!(
            delete("contractAccount", Some("1000001"), "800000001").unwrap().writes,
            [
                owned(Table::ContractAccounts, "accountNumber", "800000001"),
                owned(Table::BankDetails, "accountNumber", "800000001")
            ]
        );
        for (t, table, sort) in [
            ("contract", Table::Contracts, "contractNumber"),
            ("installation", Table::Installations, "installationId"),
            ("installmentPlan", Table::InstallmentPlans, "accountNumber"),
            ("document", Table::Documents, "documentId"),
        ] {
            assert_eq!(delete(t, Some("1000001"), "K-1").unwrap().writes, [owned(table, sort, "K-1")], "{t}");
            assert!(delete(t, None, "K-1").is_err(), "{t} without owner");
        }
        assert_eq!(
            delete("product", None, "STROM-BASIS").unwrap().writes,
            [SyncWrite::Delete { table: Table::Products, key: vec![("productId", "STROM-BASIS".into())] }]
        );
        assert!(delete("portalLogin", Some("1000001"), "x").unwrap_err().0.contains("is never deleted"));
        // A reading, by its key: out of the history (and the last reading follows).
        let [SyncWrite::DeleteReading { owner, meter, register, date }] =
            &delete("meterReading", Some("1000001"), "1EMH0012345678#HT#2026-12-01").unwrap().writes[..]
        else {
            panic!()
        };
        assert_eq!(
            (owner.as_str(), meter.as_str(), register.as_str(), crate::entities::iso_date::format(*date)),
            ("1000001", "1EMH0012345678", "HT", "2026-12-01".to_owned())
        );
        for bad in ["x", "1EMH0012345678#HT", "1EMH0012345678#HT#2026-13-01", "1emh#HT#2026-12-01"] {
            assert!(delete("meterReading", Some("1000001"), bad).is_err(), "{bad}");
        }
        assert!(delete("meterReading", None, "1EMH0012345678#HT#2026-12-01").is_err(), "needs the owner");
    }

    #[test]
    fn a_status_report_keeps_at_most_500_characters_of_its_reason() {
        let id = RequestId::new_random();
        let d = decide(&example_status(id, RequestKind::Message).to_string()).unwrap();
        assert_eq!(d.message_id, "b7c1e2d4-0f3a-4e5b-9c6d-7e8f9a0b1c2d");
        assert_eq!(d.version, 0);
        let [SyncWrite::Status { request_id, kind, status, reason, at }] = &d.writes[..] else { panic!() };
        assert_eq!(
            (*request_id, *kind, *status, reason.clone()),
            (id, RequestKind::Message, RequestStatus::Processed, None)
        );
        assert_eq!(*at, time::macros::datetime!(2026-12-01 10:15 UTC));
        let mut rejected = example_status(id, RequestKind::InstallmentChange);
        rejected["status"] = json!("REJECTED");
        rejected["reason"] = json!("ä".repeat(600));
        let d = decide(&rejected.to_string()).unwrap();
        let [SyncWrite::Status { status, reason, .. }] = &d.writes[..] else { panic!() };
        assert_eq!((*status, reason.as_ref().map(|r| r.chars().count())), (RequestStatus::Rejected, Some(500)));
    }
}
