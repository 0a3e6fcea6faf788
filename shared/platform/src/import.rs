//! Writes a validated [`MirrorSnapshot`] into the mirror tables (initial load).
//!
//! Validation happens before the first write (`portal_domain::export`), so a bad export
//! writes nothing. Mirror items are put whole, versioned like the inbound sync's: the
//! export's `version` (its position in EVI's change sequence) becomes every item's
//! `syncVersion`, and an item is written only over an older one. Importing the same export
//! twice leaves the same state, and a re-run after the sync has started applies only what
//! is newer than the mirror (a later change or a deletion's tombstone stays). Portal logins are the exception: their status, customer numbers and e-mail
//! come from the CRM (so setting AKTIV there reactivates a login), but a password the
//! customer has set in the portal is never overwritten by the export's.

use crate::aws::Clients;
use crate::config::{Config, Tables};
use crate::dynamo::{Item, condition_failed, s, store_error, to_item};
use crate::identity::DynamoSessions;
use aws_sdk_dynamodb::Client;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use portal_domain::documents::object_key;
use portal_domain::entities::{LoginStatus, PortalLogin, iso_date};
use portal_domain::export::{ImportError, MirrorSnapshot, parse_export};
use portal_domain::identity::{partner_claim, username_claim};
use portal_domain::ports::StoreError;
use serde::Serialize;
use std::collections::HashMap;

/// Sort key of a reading in its customer's partition: meter, register, date.
pub fn reading_key(r: &portal_domain::entities::MeterReading) -> String {
    format!("{}#{}#{}", r.meter_number, r.register, iso_date::format(r.date))
}

/// Number of items written per table.
pub type ImportReport = Vec<(String, usize)>;

fn items<T: Serialize>(values: &[T]) -> Result<Vec<Item>, StoreError> {
    values.iter().map(to_item).collect()
}

pub async fn write_snapshot(
    clients: &Clients,
    config: &Config,
    snapshot: &MirrorSnapshot,
) -> Result<ImportReport, StoreError> {
    let (client, tables) = (&clients.dynamo, config.tables.as_ref());
    // Files first: a document item never points at a missing file.
    let mut files = 0;
    for document in &snapshot.documents {
        if let Some(content) = &document.content_base64 {
            let bytes =
                BASE64.decode(content).map_err(|e| StoreError(format!("document {}: {e}", document.document_id)))?;
            clients
                .s3
                .put_object()
                .bucket(&config.documents_bucket)
                .key(object_key(&document.partner_number, &document.document_id))
                .content_type(&document.media_type)
                .body(bytes.into())
                .send()
                .await
                .map_err(|e| store_error("PutObject", e))?;
            files += 1;
        }
    }
    let owners: HashMap<&str, &str> =
        snapshot.meters.iter().map(|m| (m.meter.meter_number.as_str(), m.partner_number.as_str())).collect();
    let readings: Vec<Item> = snapshot
        .readings
        .iter()
        .map(|r| {
            let mut item = to_item(r)?;
            let owner =
                owners.get(r.meter_number.as_str()).ok_or_else(|| StoreError("reading of an unknown meter".into()))?;
            item.insert("partnerNumber".to_owned(), s(*owner));
            item.insert("readingKey".to_owned(), s(reading_key(r)));
            Ok(item)
        })
        .collect::<Result<_, StoreError>>()?;
    let mut code_list_items = items(&snapshot.code_values)?;
    if let Some(inbox) = &snapshot.inbox {
        let setting = portal_domain::sync::inbox_setting(inbox).map_err(|e| StoreError(e.0))?;
        code_list_items.push(to_item(&setting)?);
    }
    let plan: Vec<(&str, Vec<Item>)> = vec![
        (&tables.business_partners, items(&snapshot.partners)?),
        (&tables.contract_accounts, items(&snapshot.accounts)?),
        (&tables.bank_details, items(&snapshot.bank_details)?),
        (&tables.contracts, items(&snapshot.contracts)?),
        (&tables.installations, items(&snapshot.installations)?),
        (&tables.meters, items(&snapshot.meters)?),
        (&tables.meter_readings, readings),
        (&tables.installment_plans, items(&snapshot.installment_plans)?),
        (&tables.documents, items(&snapshot.documents)?),
        (&tables.products, items(&snapshot.products)?),
        (&tables.code_lists, code_list_items),
    ];

    let mut report = Vec::new();
    for (table, items) in plan {
        let written = put_newer_all(client, table, items, snapshot.version).await?;
        report.push((table.to_owned(), written));
    }
    let mut claims = 0;
    for login in &snapshot.logins {
        claims += apply_login(client, tables, login, Some(snapshot.version)).await?.map_or(0, |a| a.claims);
    }
    report.push((tables.login_claims.clone(), claims));
    report.push((config.documents_bucket.clone(), files));
    Ok(report)
}

/// Writes a login as the CRM has it: status, customer numbers and e-mail, but never over a
/// password set in the portal. A customer number is kept only if the login holds (or
/// takes) its claim — a number another login holds stays with that login — and the claims
/// of numbers the login no longer has are given up. Sessions follow: a login that is no
/// longer active has none; an active one's carry its customer numbers. With a `version`
/// (the inbound sync) nothing is written over a newer version (`None`); the same version
/// again is written again, so that a redelivery finishes what a failure interrupted.
/// Returns the number of claims held.
/// What applying a login did: the claims it took, and whether it was the CRM's approval of
/// a login that waited for it (status AUSSTEHEND, never used, now AKTIV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginApplied {
    pub claims: usize,
    pub approved: bool,
}

pub async fn apply_login(
    client: &Client,
    tables: &Tables,
    login: &PortalLogin,
    version: Option<u64>,
) -> Result<Option<LoginApplied>, StoreError> {
    let stored = client
        .get_item()
        .table_name(&tables.portal_logins)
        .key("loginId", s(login.login_id.as_str()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| store_error("GetItem", e))?
        .item
        .unwrap_or_default();
    let stored_version = stored.get("syncVersion").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok());
    if let (Some(new), Some(old)) = (version, stored_version)
        && old > new
    {
        return Ok(None);
    }
    let waited = stored.get("status").and_then(|v| v.as_s().ok()).is_some_and(|st| st == "AUSSTEHEND")
        && stored.get("mustChangePassword").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
    let approved = waited && login.status == LoginStatus::Active;
    let previous: Vec<String> = stored
        .get("partnerNumbers")
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
        .unwrap_or_default();

    let mut claims = usize::from(claim(client, tables, &username_claim(&login.username.to_lowercase()), login).await?);
    let mut kept = Vec::new();
    for p in &login.partner_numbers {
        if login.status == LoginStatus::Deleted {
            // A deleted login leaves its customer numbers free for a new registration.
            release(client, tables, &partner_claim(p), login).await?;
            kept.push(p.clone());
        } else if claim(client, tables, &partner_claim(p), login).await? {
            claims += 1;
            kept.push(p.clone());
        }
    }
    for gone in previous.iter().filter(|p| !login.partner_numbers.iter().any(|n| n.as_str() == p.as_str())) {
        release(client, tables, &format!("PARTNER#{gone}"), login).await?;
    }
    let written = PortalLogin { partner_numbers: kept, ..login.clone() };
    if !put_login(client, &tables.portal_logins, &written, version).await? {
        return Ok(None);
    }
    // Open sessions follow at once: the session check reads the login's status and customer
    // numbers with every request. An ended login's session records are removed as clean-up.
    if written.status != LoginStatus::Active {
        portal_domain::identity::access::end_sessions(&DynamoSessions::new(client.clone(), tables), &written.login_id)
            .await;
    }
    Ok(Some(LoginApplied { claims, approved }))
}

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error("export refused, nothing imported: {0}")]
    Invalid(#[from] ImportError),
    #[error("import failed: {0}")]
    Store(#[from] StoreError),
}

/// Validates a whole export, then writes it.
pub async fn import_export(clients: &Clients, config: &Config, export: &str) -> Result<ImportReport, ImportFailure> {
    let snapshot = parse_export(export)?;
    Ok(write_snapshot(clients, config, &snapshot).await?)
}

/// Claims a key for an imported login unless another login holds it (then it is left to
/// that login, and reported).
async fn claim(client: &Client, tables: &Tables, key: &str, login: &PortalLogin) -> Result<bool, StoreError> {
    let result = client
        .put_item()
        .table_name(&tables.login_claims)
        .item("claimKey", s(key))
        .item("loginId", s(login.login_id.as_str()))
        .condition_expression("attribute_not_exists(claimKey) OR loginId = :id")
        .expression_attribute_values(":id", s(login.login_id.as_str()))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if condition_failed(&e) => {
            tracing::warn!(login_id = %login.login_id, claim = key.split('#').next().unwrap_or_default(), "claimed by another login; left to it");
            Ok(false)
        }
        Err(e) => Err(store_error("PutItem", e)),
    }
}

/// Removes a claim if this login holds it.
async fn release(client: &Client, tables: &Tables, key: &str, login: &PortalLogin) -> Result<(), StoreError> {
    let result = client
        .delete_item()
        .table_name(&tables.login_claims)
        .key("claimKey", s(key))
        .condition_expression("loginId = :id")
        .expression_attribute_values(":id", s(login.login_id.as_str()))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if condition_failed(&e) => Ok(()),
        Err(e) => Err(store_error("DeleteItem", e)),
    }
}

/// Whether the login was written (not over a newer version).
async fn put_login(
    client: &Client,
    table: &str,
    login: &portal_domain::entities::PortalLogin,
    version: Option<u64>,
) -> Result<bool, StoreError> {
    let status = serde_dynamo::to_attribute_value(login.status).map_err(|e| StoreError(e.to_string()))?;
    let partners = serde_dynamo::to_attribute_value(&login.partner_numbers).map_err(|e| StoreError(e.to_string()))?;
    let mut update = "SET username = :u, displayUsername = :du, email = :e, #st = :st, partnerNumbers = :p, \
                      createdAt = :c, passwordHash = if_not_exists(passwordHash, :h), \
                      mustChangePassword = if_not_exists(mustChangePassword, :m)"
        .to_owned();
    let mut request = client.update_item().table_name(table).key("loginId", s(login.login_id.as_str()));
    if let Some(v) = version {
        update.push_str(", syncVersion = :v");
        request = request
            .condition_expression("attribute_not_exists(syncVersion) OR syncVersion <= :v")
            .expression_attribute_values(":v", crate::dynamo::n(v));
    }
    let result = request
        .update_expression(update)
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":u", s(login.username.to_lowercase()))
        .expression_attribute_values(":du", s(&login.username))
        .expression_attribute_values(":e", s(login.email.to_lowercase()))
        .expression_attribute_values(":st", status)
        .expression_attribute_values(":p", partners)
        .expression_attribute_values(":c", s(portal_domain::entities::timestamp::format(login.created_at)))
        .expression_attribute_values(":h", s(&login.password_hash))
        .expression_attribute_values(":m", aws_sdk_dynamodb::types::AttributeValue::Bool(login.must_change_password))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if condition_failed(&e) => Ok(false),
        Err(e) => Err(store_error("UpdateItem", e)),
    }
}

/// Items the export is at least as new as: each with the export's version as its
/// `syncVersion`, put only where the mirror holds nothing newer or equal (a change or a
/// deletion the inbound sync applied after this export was taken stays). Conditional puts,
/// 16 in flight (BatchWriteItem takes no conditions). Returns how many were written.
async fn put_newer_all(client: &Client, table: &str, items: Vec<Item>, version: u64) -> Result<usize, StoreError> {
    use futures::{StreamExt, TryStreamExt};
    let written: Vec<bool> = futures::stream::iter(items)
        .map(|mut item| async move {
            item.insert("syncVersion".to_owned(), crate::dynamo::n(version));
            let result = client
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(syncVersion) OR syncVersion < :v")
                .expression_attribute_values(":v", crate::dynamo::n(version))
                .send()
                .await;
            match result {
                Ok(_) => Ok(true),
                Err(e) if condition_failed(&e) => Ok(false),
                Err(e) => Err(store_error("PutItem", e)),
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    Ok(written.into_iter().filter(|w| *w).count())
}
