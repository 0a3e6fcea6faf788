//! DynamoDB adapters of the read ports. Items are mapped with `serde_dynamo` here and
//! nowhere else; the domain never sees an `AttributeValue`.

use crate::config::Tables;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;
use portal_domain::entities::{BusinessPartner, Contract, ContractAccountRecord, MeterRecord};
use portal_domain::export::Owned;
use portal_domain::ids::{CustomerNumber, MeterNumber};
use portal_domain::ports::{AttemptLimiter, CustomerDirectory, StoreError};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

pub type Item = HashMap<String, AttributeValue>;

/// A storage error with the SDK's full context, for the log (never for the client).
pub fn store_error(operation: &str, err: impl std::error::Error) -> StoreError {
    let detail = DisplayErrorContext(&err).to_string();
    // The SDK's timeout (attempt or whole call) and a connection that could not be made:
    // the service did not answer, which is worth a retry (503), not a bug (500).
    if detail.starts_with("request has timed out") || detail.starts_with("dispatch failure") {
        return StoreError(format!("{operation}: {UNAVAILABLE}: {detail}"));
    }
    StoreError(format!("{operation}: {detail}"))
}

/// Marks a storage error whose AWS service did not answer in time (see [`store_error`]);
/// such an error is answered with 503 and `Retry-After` (`http::Problem::unexpected`).
pub const UNAVAILABLE: &str = "the AWS service did not answer in time";

/// Whether a DynamoDB call failed on its condition expression (an answer, not an error).
pub fn condition_failed<E: ProvideErrorMetadata, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool {
    err.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException")
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Maps an item to its entity. The sync's bookkeeping (`syncVersion`) is not part of it.
pub fn from_item<T: DeserializeOwned>(table: &str, mut item: Item) -> Result<T, StoreError> {
    // The sync's bookkeeping, not part of the entity.
    item.remove("syncVersion");
    item.remove("supplyEndVersion");
    serde_dynamo::from_item(item).map_err(|e| StoreError(format!("item of {table} does not map: {e}")))
}

pub fn to_item<T: serde::Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError(format!("value does not map to an item: {e}")))
}

/// The attribute that marks what is left of an entity the CRM deleted: its key and the
/// version of the deletion, so that a late, older change never brings it back. Every read
/// of the mirror passes over it as over a missing item.
pub const TOMBSTONE: &str = "tombstone";

pub fn is_tombstone(item: &Item) -> bool {
    item.contains_key(TOMBSTONE)
}

/// Reads one item by key.
pub(crate) async fn get<T: DeserializeOwned>(client: &Client, table: &str, key: Item) -> Result<Option<T>, StoreError> {
    let out =
        client.get_item().table_name(table).set_key(Some(key)).send().await.map_err(|e| store_error("GetItem", e))?;
    out.item.filter(|item| !is_tombstone(item)).map(|item| from_item(table, item)).transpose()
}

/// All items of one partition (one customer's items of a table), every page.
pub(crate) async fn partition<T: DeserializeOwned>(
    client: &Client,
    table: &str,
    key_name: &str,
    key: &str,
) -> Result<Vec<T>, StoreError> {
    index_partition(client, table, None, key_name, key).await
}

/// All items of one partition of a table or of one of its indexes, every page.
pub(crate) async fn index_partition<T: DeserializeOwned>(
    client: &Client,
    table: &str,
    index: Option<&str>,
    key_name: &str,
    key: &str,
) -> Result<Vec<T>, StoreError> {
    let query = client
        .query()
        .table_name(table)
        .set_index_name(index.map(str::to_owned))
        .key_condition_expression("#k = :k")
        .expression_attribute_names("#k", key_name)
        .expression_attribute_values(":k", s(key));
    let items = all_pages(query).await?;
    items.into_iter().filter(|item| !is_tombstone(item)).map(|item| from_item(table, item)).collect()
}

/// Every item a query finds, page by page.
async fn all_pages(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<Item>, StoreError> {
    query.into_paginator().items().send().try_collect().await.map_err(|e| store_error("Query", e))
}

/// One customer's reading history under a key prefix (`<meter>#`, or `<meter>#<register>#`
/// for one register), every page; tombstones of deleted readings are no readings, and the
/// mirror's keys are not the CRM reading's.
pub(crate) async fn reading_history(
    client: &Client,
    table: &str,
    customer: &str,
    prefix: &str,
) -> Result<Vec<portal_domain::entities::MeterReading>, StoreError> {
    let items = all_pages(
        client
            .query()
            .table_name(table)
            .key_condition_expression("partnerNumber = :p AND begins_with(readingKey, :m)")
            .expression_attribute_values(":p", s(customer))
            .expression_attribute_values(":m", s(prefix)),
    )
    .await?;
    items
        .into_iter()
        .filter(|i| !is_tombstone(i))
        .map(|mut i| {
            i.remove("partnerNumber");
            i.remove("readingKey");
            from_item(table, i)
        })
        .collect()
}

/// The mirror of one customer's master data.
#[derive(Debug, Clone)]
pub struct DynamoDirectory {
    client: Client,
    tables: Arc<Tables>,
}

impl DynamoDirectory {
    pub fn new(client: Client, tables: Arc<Tables>) -> Self {
        Self { client, tables }
    }
}

impl CustomerDirectory for DynamoDirectory {
    async fn partner(&self, customer: &CustomerNumber) -> Result<Option<BusinessPartner>, StoreError> {
        let key = HashMap::from([("partnerNumber".to_owned(), s(customer.as_str()))]);
        get(&self.client, &self.tables.business_partners, key).await
    }

    async fn contracts(&self, customer: &CustomerNumber) -> Result<Vec<Owned<Contract>>, StoreError> {
        partition(&self.client, &self.tables.contracts, "partnerNumber", customer.as_str()).await
    }

    async fn contract_accounts(&self, customer: &CustomerNumber) -> Result<Vec<ContractAccountRecord>, StoreError> {
        partition(&self.client, &self.tables.contract_accounts, "partnerNumber", customer.as_str()).await
    }

    async fn meters(&self, customer: &CustomerNumber) -> Result<Vec<MeterRecord>, StoreError> {
        partition(&self.client, &self.tables.meters, "partnerNumber", customer.as_str()).await
    }

    async fn meter(&self, customer: &CustomerNumber, meter: &MeterNumber) -> Result<Option<MeterRecord>, StoreError> {
        // The owner is part of the key: another customer's meter is simply not there.
        let key = HashMap::from([
            ("partnerNumber".to_owned(), s(customer.as_str())),
            ("meterNumber".to_owned(), s(meter.as_str())),
        ]);
        get(&self.client, &self.tables.meters, key).await
    }
}

/// Fixed-window attempt counters in the rate-limit table (TTL cleans up old windows).
#[derive(Debug, Clone)]
pub struct DynamoLimiter {
    client: Client,
    table: String,
}

impl DynamoLimiter {
    pub fn new(client: Client, tables: &Tables) -> Self {
        Self { client, table: tables.rate_limits.clone() }
    }
}

impl AttemptLimiter for DynamoLimiter {
    async fn attempt(&self, window_key: &str, limit: u32, expires_at_epoch: i64) -> Result<bool, StoreError> {
        // One conditional increment: parallel attempts cannot pass the limit together.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("limitKey", s(window_key))
            .update_expression("ADD attempts :one SET expiresAt = :exp")
            .condition_expression("attribute_not_exists(attempts) OR attempts < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":exp", n(expires_at_epoch))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }

    async fn give_back(&self, window_key: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("limitKey", s(window_key))
            .update_expression("ADD attempts :minus_one")
            .condition_expression("attempts > :zero")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }
}

#[cfg(test)]
mod unavailable_tests {
    use super::{UNAVAILABLE, store_error};
    use std::time::Duration;

    async fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(200))
            .operation_attempt_timeout(Duration::from_millis(300))
            .operation_timeout(Duration::from_millis(700))
            .build();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(crate::aws::http_client())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("t", "t", None, None, "test"))
            .timeout_config(timeouts)
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&config)
    }

    async fn get(endpoint: &str) -> String {
        let err = client(endpoint).await.get_item().table_name("t").key("k", super::s("v")).send().await.unwrap_err();
        store_error("GetItem", err).0
    }

    /// The SDK's own errors, as they are classified: a service that accepts the connection
    /// but never answers, and one that refuses it, are unavailable (503).
    #[tokio::test]
    async fn a_hung_or_refused_call_is_marked_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hung = format!("http://{}", listener.local_addr().unwrap());
        assert!(get(&hung).await.contains(UNAVAILABLE), "a call that is never answered");
        drop(listener);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        assert!(get(&refused).await.contains(UNAVAILABLE), "a refused connection");
        let built = aws_sdk_dynamodb::types::Put::builder().build().unwrap_err();
        assert!(!store_error("Put", built).0.contains(UNAVAILABLE), "a request that cannot be built is a bug");
    }
}
