//! `GET /v1/me/requests`: a customer's requests from every transaction table, through each
//! table's sparse `by-customer` index (customer number, submitted at), all queried in one
//! concurrent round.

use crate::config::Tables;
use crate::dynamo::{Item, from_item, s, store_error};
use futures::future::try_join_all;
use portal_domain::identity::sessions::Caller;
use portal_domain::ports::StoreError;
use portal_domain::requests::{RequestSummary, page};
use std::sync::Arc;

const INDEX: &str = "by-customer";
/// Requests of one customer in one table submitted in the same millisecond, at most.
const TIES: usize = 16;

#[derive(Debug, Clone)]
pub struct RequestLog {
    client: aws_sdk_dynamodb::Client,
    tables: Arc<Tables>,
}

impl RequestLog {
    pub fn new(client: aws_sdk_dynamodb::Client, tables: Arc<Tables>) -> Self {
        Self { client, tables }
    }

    /// The caller's requests older than `before` (submitted at, request id), newest first:
    /// at most `limit`, and whether more follow.
    pub async fn page(
        &self,
        caller: &Caller,
        before: Option<(String, String)>,
        limit: usize,
    ) -> Result<(Vec<RequestSummary>, bool), StoreError> {
        let queries = caller.partner_numbers.iter().flat_map(|customer| {
            self.tables.record_tables().map(|table| {
                let before = before.clone();
                async move {
                    let mut query = self
                        .client
                        .query()
                        .table_name(table)
                        .index_name(INDEX)
                        .scan_index_forward(false)
                        // One more than a page shows whether more follow; the margin covers
                        // requests of the cursor's own millisecond already shown.
                        .limit(i32::try_from(limit + 1 + TIES).unwrap_or(i32::MAX))
                        .expression_attribute_values(":c", s(customer.as_str()));
                    query = match &before {
                        Some((at, _)) => query
                            .key_condition_expression("partnerNumber = :c AND submittedAt <= :at")
                            .expression_attribute_values(":at", s(at)),
                        None => query.key_condition_expression("partnerNumber = :c"),
                    };
                    let out = query.send().await.map_err(|e| store_error("Query", e))?;
                    out.items
                        .unwrap_or_default()
                        .into_iter()
                        .map(|item: Item| from_item::<RequestSummary>(table, item))
                        .collect::<Result<Vec<_>, _>>()
                }
            })
        });
        let found: Vec<RequestSummary> = try_join_all(queries).await?.into_iter().flatten().collect();
        Ok(page(found, before.as_ref(), limit))
    }
}
