//! The JSON Schemas of `schemas/`, embedded in every binary and compiled once per
//! process. `$ref`s between them resolve from this list, never from the network.

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;

/// Base URI of every schema's `$id`.
pub const BASE_URI: &str = "https://schemas.evi-portal.example/v1/";

/// Every schema file, by its path under `schemas/`.
pub const ALL: &[(&str, &str)] = &[
    ("common.schema.json", include_str!("../../../schemas/common.schema.json")),
    ("problem.schema.json", include_str!("../../../schemas/problem.schema.json")),
    (
        "anonymous-meter-reading-lookup.request.schema.json",
        include_str!("../../../schemas/anonymous-meter-reading-lookup.request.schema.json"),
    ),
    (
        "anonymous-meter-reading-lookup.response.schema.json",
        include_str!("../../../schemas/anonymous-meter-reading-lookup.response.schema.json"),
    ),
    (
        "anonymous-meter-reading.request.schema.json",
        include_str!("../../../schemas/anonymous-meter-reading.request.schema.json"),
    ),
    (
        "meter-reading-receipt.response.schema.json",
        include_str!("../../../schemas/meter-reading-receipt.response.schema.json"),
    ),
    ("events/envelope.schema.json", include_str!("../../../schemas/events/envelope.schema.json")),
    (
        "events/meter-reading-submitted.schema.json",
        include_str!("../../../schemas/events/meter-reading-submitted.schema.json"),
    ),
    (
        "customer-identification.request.schema.json",
        include_str!("../../../schemas/customer-identification.request.schema.json"),
    ),
    (
        "registration-verification.response.schema.json",
        include_str!("../../../schemas/registration-verification.response.schema.json"),
    ),
    ("registration.request.schema.json", include_str!("../../../schemas/registration.request.schema.json")),
    ("registration.response.schema.json", include_str!("../../../schemas/registration.response.schema.json")),
    ("session.request.schema.json", include_str!("../../../schemas/session.request.schema.json")),
    ("session.response.schema.json", include_str!("../../../schemas/session.response.schema.json")),
    ("password-change.request.schema.json", include_str!("../../../schemas/password-change.request.schema.json")),
    ("password-reset.request.schema.json", include_str!("../../../schemas/password-reset.request.schema.json")),
    (
        "password-reset-confirmation.request.schema.json",
        include_str!("../../../schemas/password-reset-confirmation.request.schema.json"),
    ),
    ("account.response.schema.json", include_str!("../../../schemas/account.response.schema.json")),
    ("dashboard.response.schema.json", include_str!("../../../schemas/dashboard.response.schema.json")),
    (
        "events/portal-login-registered.schema.json",
        include_str!("../../../schemas/events/portal-login-registered.schema.json"),
    ),
    (
        "events/portal-login-deleted.schema.json",
        include_str!("../../../schemas/events/portal-login-deleted.schema.json"),
    ),
    (
        "events/portal-login-customer-number-added.schema.json",
        include_str!("../../../schemas/events/portal-login-customer-number-added.schema.json"),
    ),
    ("customer.response.schema.json", include_str!("../../../schemas/customer.response.schema.json")),
    ("data-export.response.schema.json", include_str!("../../../schemas/data-export.response.schema.json")),
    ("contract.response.schema.json", include_str!("../../../schemas/contract.response.schema.json")),
    ("account-contracts.response.schema.json", include_str!("../../../schemas/account-contracts.response.schema.json")),
    ("installment-plan.response.schema.json", include_str!("../../../schemas/installment-plan.response.schema.json")),
    ("bank-details.response.schema.json", include_str!("../../../schemas/bank-details.response.schema.json")),
    ("products.response.schema.json", include_str!("../../../schemas/products.response.schema.json")),
    ("code-list.response.schema.json", include_str!("../../../schemas/code-list.response.schema.json")),
    ("meter-readings.response.schema.json", include_str!("../../../schemas/meter-readings.response.schema.json")),
    ("consumption.response.schema.json", include_str!("../../../schemas/consumption.response.schema.json")),
    ("reading-range.response.schema.json", include_str!("../../../schemas/reading-range.response.schema.json")),
    (
        "termination-options.response.schema.json",
        include_str!("../../../schemas/termination-options.response.schema.json"),
    ),
    ("documents.response.schema.json", include_str!("../../../schemas/documents.response.schema.json")),
    (
        "document-upload-link.request.schema.json",
        include_str!("../../../schemas/document-upload-link.request.schema.json"),
    ),
    (
        "document-upload-link.response.schema.json",
        include_str!("../../../schemas/document-upload-link.response.schema.json"),
    ),
    ("contact-change.request.schema.json", include_str!("../../../schemas/contact-change.request.schema.json")),
    (
        "customer-data-change.request.schema.json",
        include_str!("../../../schemas/customer-data-change.request.schema.json"),
    ),
    (
        "events/customer-data-change-requested.schema.json",
        include_str!("../../../schemas/events/customer-data-change-requested.schema.json"),
    ),
    ("change-receipt.response.schema.json", include_str!("../../../schemas/change-receipt.response.schema.json")),
    (
        "events/customer-contact-data-changed.schema.json",
        include_str!("../../../schemas/events/customer-contact-data-changed.schema.json"),
    ),
    (
        "bank-details-change.request.schema.json",
        include_str!("../../../schemas/bank-details-change.request.schema.json"),
    ),
    ("mandate-revocation.request.schema.json", include_str!("../../../schemas/mandate-revocation.request.schema.json")),
    ("account-deletion.request.schema.json", include_str!("../../../schemas/account-deletion.request.schema.json")),
    ("installment-change.request.schema.json", include_str!("../../../schemas/installment-change.request.schema.json")),
    (
        "billing-address-change.request.schema.json",
        include_str!("../../../schemas/billing-address-change.request.schema.json"),
    ),
    ("meter-reading.request.schema.json", include_str!("../../../schemas/meter-reading.request.schema.json")),
    ("termination.request.schema.json", include_str!("../../../schemas/termination.request.schema.json")),
    ("message.request.schema.json", include_str!("../../../schemas/message.request.schema.json")),
    ("request-receipt.response.schema.json", include_str!("../../../schemas/request-receipt.response.schema.json")),
    (
        "events/bank-details-changed.schema.json",
        include_str!("../../../schemas/events/bank-details-changed.schema.json"),
    ),
    (
        "events/direct-debit-mandate-revoked.schema.json",
        include_str!("../../../schemas/events/direct-debit-mandate-revoked.schema.json"),
    ),
    (
        "events/installment-change-requested.schema.json",
        include_str!("../../../schemas/events/installment-change-requested.schema.json"),
    ),
    (
        "events/billing-address-changed.schema.json",
        include_str!("../../../schemas/events/billing-address-changed.schema.json"),
    ),
    (
        "events/contract-termination-requested.schema.json",
        include_str!("../../../schemas/events/contract-termination-requested.schema.json"),
    ),
    ("events/message-received.schema.json", include_str!("../../../schemas/events/message-received.schema.json")),
    ("events/document-uploaded.schema.json", include_str!("../../../schemas/events/document-uploaded.schema.json")),
    ("events/crm-entity-changed.schema.json", include_str!("../../../schemas/events/crm-entity-changed.schema.json")),
    ("events/crm-entity-deleted.schema.json", include_str!("../../../schemas/events/crm-entity-deleted.schema.json")),
    (
        "events/crm-request-status-changed.schema.json",
        include_str!("../../../schemas/events/crm-request-status-changed.schema.json"),
    ),
    ("requests.response.schema.json", include_str!("../../../schemas/requests.response.schema.json")),
];

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("unknown schema {0}")]
    Unknown(String),
    #[error("schema {0} is not JSON: {1}")]
    NotJson(String, serde_json::Error),
    #[error("schema {0} does not compile: {1}")]
    Invalid(String, String),
}

pub fn source(path: &str) -> Result<Value, SchemaError> {
    let (_, text) = ALL.iter().find(|(p, _)| *p == path).ok_or_else(|| SchemaError::Unknown(path.to_owned()))?;
    serde_json::from_str(text).map_err(|e| SchemaError::NotJson(path.to_owned(), e))
}

/// Resolves `$ref`s to the embedded schemas.
struct Embedded;

impl Retrieve for Embedded {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let path =
            uri.as_str().strip_prefix(BASE_URI).ok_or_else(|| format!("no embedded schema for {}", uri.as_str()))?;
        Ok(source(path)?)
    }
}

/// Compiles one schema (and whatever it references).
pub fn compile(path: &str) -> Result<Validator, SchemaError> {
    let schema = source(path)?;
    jsonschema::options()
        .with_retriever(Embedded)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| SchemaError::Invalid(path.to_owned(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_its_examples_validate() {
        for (path, _) in ALL {
            let validator = compile(path).unwrap();
            let schema = source(path).unwrap();
            for example in schema.get("examples").and_then(Value::as_array).into_iter().flatten() {
                assert!(validator.is_valid(example), "example of {path} does not validate");
            }
        }
    }

    #[test]
    fn every_schema_file_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let mut files = Vec::new();
        for sub in ["", "events"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".schema.json") {
                    files.push(if sub.is_empty() { name } else { format!("{sub}/{name}") });
                }
            }
        }
        for f in files {
            assert!(ALL.iter().any(|(p, _)| *p == f), "{f} is not embedded in schemas::ALL");
        }
    }
}

#[cfg(test)]
mod openapi_tests {
    use super::*;

    const OPENAPI: &str = include_str!("../../../schemas/openapi.json");

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_openapi_document_references_only_embedded_schemas_and_its_own_components() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            if let Some(pointer) = r.strip_prefix('#') {
                assert!(doc.pointer(pointer).is_some(), "dangling {r}");
            } else {
                compile(r).unwrap_or_else(|e| panic!("{r}: {e}"));
            }
        }
        // Every operation documents its server error, every body-taking one its 400, and
        // every authenticated one its 401.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let mut expected = vec!["500"];
                if op.get("requestBody").is_some() {
                    expected.push("400");
                }
                if op.get("security").is_some() {
                    expected.push("401");
                }
                for status in expected {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
            }
        }

        // The routes themselves: `routes::tests` holds them to the route table.
    }
}
