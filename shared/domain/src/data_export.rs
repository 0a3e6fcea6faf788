//! Data export (GDPR Art. 15 and 20): one machine-readable document of everything the
//! backend holds about a login and its customers: the login, the mirrored entities, every
//! request with its status, the activities, the consents and the uploads' metadata.
//!
//! What leaves is cleaned here, whatever the stores hold: no secret (password hash,
//! session or one-time token hashes, one-time codes) and no internal bookkeeping
//! (versions, sync versions, claims); IBANs are masked as in every view, so that a stolen
//! session still cannot read a bank account.

use crate::reads::mask_iban;
use serde_json::{Map, Value, json};

/// The format of the export document (`schemas/data-export.response.schema.json`).
pub const FORMAT: &str = "evi-portal-export/1";

/// Attributes that are never exported, at any depth. (One-time codes and session tokens
/// live in tables the export does not read; their hashes are withheld wherever they appear.)
pub const WITHHELD: [&str; 12] = [
    "passwordHash",
    "tokenHash",
    "codeHash",
    "sessionGeneration",
    "syncVersion",
    "version",
    "expiresAt",
    "idempotencyKey",
    "claimKey",
    "fileKey",
    "supplyEndVersion",
    "restoreOnRejection",
];

/// A stored item as it may be exported: withheld attributes removed and IBANs masked, at
/// every depth.
pub fn clean(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !WITHHELD.contains(&k.as_str()))
                .map(|(k, v)| match (k.as_str(), v) {
                    ("iban", Value::String(iban)) => (k, Value::String(mask_iban(&iban))),
                    (_, v) => (k, clean(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(clean).collect()),
        other => other,
    }
}

/// Everything held under one customer number, as read from the stores.
#[derive(Debug, Clone, Default)]
pub struct CustomerData {
    pub customer_number: String,
    pub business_partner: Option<Value>,
    pub contract_accounts: Vec<Value>,
    pub bank_details: Vec<Value>,
    pub contracts: Vec<Value>,
    pub installations: Vec<Value>,
    pub meters: Vec<Value>,
    pub meter_readings: Vec<Value>,
    pub installment_plans: Vec<Value>,
    pub documents: Vec<Value>,
    pub activities: Vec<Value>,
    pub requests: Vec<Value>,
}

/// The consents a customer gave: the notification consent as it stands, and every consent
/// a request carried (terms of use and privacy notice at registration, the notification
/// consent changes, SEPA mandates), with the request and its time.
fn consents(c: &CustomerData) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(consent) = c.business_partner.as_ref().and_then(|p| p.get("notificationConsent")) {
        out.push(json!({ "type": "NOTIFICATIONS", "given": consent, "current": true }));
    }
    for r in &c.requests {
        let request = json!({ "requestId": r.get("requestId"), "submittedAt": r.get("submittedAt") });
        let mut add = |kind: &str, detail: &Value| {
            let mut entry = Map::from_iter([("type".to_owned(), json!(kind)), ("detail".to_owned(), detail.clone())]);
            if let Value::Object(m) = &request {
                entry.extend(m.clone());
            }
            out.push(Value::Object(entry));
        };
        if let Some(terms) = r.get("acceptedTerms").filter(|v| !v.is_null()) {
            add("TERMS_AND_PRIVACY", terms);
        }
        if let Some(consent) = r.get("consent").filter(|v| !v.is_null()) {
            add("NOTIFICATIONS", consent);
        }
        if let Some(mandate) = r.get("mandateRequest").filter(|v| !v.is_null()) {
            add("SEPA_MANDATE", mandate);
        }
    }
    out
}

/// The export document.
pub fn document(login: Value, customers: Vec<CustomerData>, generated_at: &str) -> Value {
    let customers: Vec<Value> = customers
        .into_iter()
        .map(|c| {
            let consents = consents(&c);
            let uploads: Vec<Value> = c
                .documents
                .iter()
                .filter(|d| d.get("category").and_then(Value::as_str) == Some("UPLOAD"))
                .cloned()
                .collect();
            clean(json!({
                "customerNumber": c.customer_number,
                "businessPartner": c.business_partner,
                "contractAccounts": c.contract_accounts,
                "bankDetails": c.bank_details,
                "contracts": c.contracts,
                "installations": c.installations,
                "meters": c.meters,
                "meterReadings": c.meter_readings,
                "installmentPlans": c.installment_plans,
                "documents": c.documents,
                "uploads": uploads,
                "activities": c.activities,
                "requests": c.requests,
                "consents": consents,
            }))
        })
        .collect();
    json!({
        "format": FORMAT,
        "generatedAt": generated_at,
        "login": clean(login),
        "customers": customers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_secret_leaves_at_any_depth_and_ibans_are_masked() {
        let login = json!({
            "loginId": "L-1", "username": "erika", "passwordHash": "$argon2id$v=19$...",
            "sessionGeneration": 3, "email": "erika@example.org",
        });
        let mut erika = CustomerData { customer_number: "1000001".into(), ..CustomerData::default() };
        erika.business_partner =
            Some(json!({"partnerNumber": "1000001", "notificationConsent": true, "syncVersion": 7}));
        erika.meters =
            vec![json!({"meterNumber": "1EMH0012345678", "registers": [{"code": "HT", "digits": 6}], "version": 4})];
        erika.bank_details =
            vec![json!({"paymentAccount": {"iban": "DE02120300000000202051", "holder": "Erika"}, "version": 2})];
        erika.requests = vec![
            json!({"requestId": "r1", "submittedAt": "2026-12-01T10:00:00Z", "requestType": "PORTAL_REGISTRATION",
                   "acceptedTerms": {"termsOfUse": "2026-01", "privacyNotice": "2026-01"},
                   "claimKey": "USER#erika", "nested": [{"tokenHash": "abc", "kept": 1}]}),
            json!({"requestId": "r2", "submittedAt": "2026-12-02T10:00:00Z", "requestType": "BANK_DETAILS_CHANGE",
                   "mandateRequest": {"textVersion": "2026-01"}, "paymentAccount": {"iban": "DE89370400440532013000"}}),
        ];
        erika.documents = vec![
            json!({"documentId": "D-1", "category": "UPLOAD", "fileKey": "uploads/x"}),
            json!({"documentId": "D-2", "category": "BILL"}),
        ];
        let doc = document(login, vec![erika], "2026-12-05T12:00:00Z");
        let text = doc.to_string();
        for secret in [
            "argon2id",
            "passwordHash",
            "sessionGeneration",
            "syncVersion",
            "tokenHash",
            "claimKey",
            "fileKey",
            "DE02120300000000202051",
            "DE89370400440532013000",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let c = &doc["customers"][0];
        assert_eq!(c["bankDetails"][0]["paymentAccount"]["iban"], mask_iban("DE02120300000000202051"));
        assert_eq!(c["requests"][0]["nested"][0]["kept"], 1);
        // A register keeps its code: only the named secrets and bookkeeping are withheld.
        assert_eq!(
            c["meters"][0],
            json!({"meterNumber": "1EMH0012345678", "registers": [{"code": "HT", "digits": 6}]})
        );
        assert_eq!(doc["login"]["email"], "erika@example.org");
        assert_eq!(doc["format"], FORMAT);
        let kinds: Vec<&str> = c["consents"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["NOTIFICATIONS", "TERMS_AND_PRIVACY", "SEPA_MANDATE"]);
        assert_eq!(c["consents"][1]["requestId"], "r1");
        assert_eq!(c["uploads"].as_array().unwrap().len(), 1);
    }
}
