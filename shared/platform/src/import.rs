//! Writes a validated [`MirrorSnapshot`] into the mirror tables (initial load).
//!
//! Validation happens before the first write (`portal_domain::export`), so a bad export
//! writes nothing. Items are put, never merged: importing the same export twice leaves
//! the same state.

use crate::config::Tables;
use crate::dynamo::{Item, store_error, to_item};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use portal_domain::entities::iso_date;
use portal_domain::export::MirrorSnapshot;
use portal_domain::ports::StoreError;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// Number of items written per table.
pub type ImportReport = Vec<(String, usize)>;

fn items<T: Serialize>(values: &[T]) -> Result<Vec<Item>, StoreError> {
    values.iter().map(to_item).collect()
}

pub async fn write_snapshot(
    client: &Client,
    tables: &Tables,
    snapshot: &MirrorSnapshot,
) -> Result<ImportReport, StoreError> {
    let readings: Vec<Item> = snapshot
        .readings
        .iter()
        .map(|r| {
            let mut item = to_item(r)?;
            let key = format!("{}#{}", r.register, iso_date::format(r.date));
            item.insert("readingKey".to_owned(), crate::dynamo::s(key));
            Ok(item)
        })
        .collect::<Result<_, StoreError>>()?;
    let logins: Vec<Item> = snapshot
        .logins
        .iter()
        .map(|l| {
            to_item(&json!({
                "loginId": l.login_id,
                "username": l.username.to_lowercase(),
                "displayUsername": l.username,
                "email": l.email,
                "status": l.status,
                "partnerNumbers": l.partner_numbers,
                "mustChangePassword": l.must_change_password,
                "passwordHash": l.password_hash,
                "createdAt": l.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            }))
        })
        .collect::<Result<_, StoreError>>()?;

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
        (&tables.code_lists, items(&snapshot.code_values)?),
        (&tables.portal_logins, logins),
    ];

    let mut report = Vec::new();
    for (table, items) in plan {
        let count = items.len();
        for chunk in items.chunks(25) {
            batch_put(client, table, chunk.to_vec()).await?;
        }
        report.push((table.to_owned(), count));
    }
    Ok(report)
}

/// One BatchWriteItem, retrying unprocessed items with a growing pause.
async fn batch_put(client: &Client, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
    let mut pending: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| store_error("PutRequest", e))?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<_, StoreError>>()?;
    for attempt in 0..8u32 {
        let out = client
            .batch_write_item()
            .set_request_items(Some(HashMap::from([(table.to_owned(), pending)])))
            .send()
            .await
            .map_err(|e| store_error("BatchWriteItem", e))?;
        pending = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
        if pending.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
    }
    Err(StoreError(format!("{table}: items still unprocessed after retries")))
}
