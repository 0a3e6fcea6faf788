//! The one write path of every customer request (transactional outbox):
//!
//! 1. one DynamoDB transaction writes the transaction record, the activities, the outbox
//!    entry holding the downstream message, and the idempotency claim with the answer;
//! 2. the message is sent to the FIFO queue (group = customer number, deduplication id =
//!    request id);
//! 3. the outbox entry is marked as sent.
//!
//! If step 2 or 3 fails the request is still committed and answered: its outbox entry
//! stays pending and the [`Relay`] sends it later. Nothing is sent for a transaction
//! that did not commit.

use crate::config::Tables;
use crate::dynamo::{Item, n, s, store_error, to_item};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_smithy_types::error::display::DisplayErrorContext;
use portal_domain::ports::{RequestWriter, StoreError};
use portal_domain::requests::{
    CommitReceipt, CustomerRequest, IdempotencyScope, RequestKind, StoredAnswer, WriteError,
};
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Marker of outbox entries not yet sent; the sparse `pending` index holds only them.
const PENDING: &str = "PENDING";
/// How long a stored answer is replayed for its idempotency key.
const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct WritePath {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    tables: Arc<Tables>,
    queue_url: String,
}

impl WritePath {
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        tables: Arc<Tables>,
        queue_url: String,
    ) -> Self {
        Self { dynamo, sqs, tables, queue_url }
    }

    fn record_table(&self, kind: RequestKind) -> &str {
        match kind {
            RequestKind::MeterReadingSubmission => &self.tables.meter_reading_submissions,
        }
    }

    fn put(table: &str, item: Item, condition_key: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(table).set_item(Some(item));
        if let Some(key) = condition_key {
            put = put.condition_expression(format!("attribute_not_exists({key})"));
        }
        let put = put.build().map_err(|e| store_error("Put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The transaction's items, the idempotency claim last.
    fn transaction(&self, r: &CustomerRequest, message: &str) -> Result<Vec<TransactWriteItem>, StoreError> {
        let request_id = r.request_id.to_string();
        let at = rfc3339(r.submitted_at);
        let mut record = match &r.record {
            Value::Object(fields) => fields.clone(),
            _ => serde_json::Map::new(),
        };
        record.extend([
            ("requestId".to_owned(), json!(request_id)),
            ("requestType".to_owned(), json!(r.kind.as_str())),
            ("partnerNumber".to_owned(), json!(r.customer)),
            ("channel".to_owned(), json!(r.channel)),
            ("submittedAt".to_owned(), json!(at)),
            ("status".to_owned(), json!("SUBMITTED")),
        ]);
        let mut items = vec![Self::put(self.record_table(r.kind), to_item(&record)?, Some("requestId"))?];

        for (i, a) in r.activities.iter().enumerate() {
            let activity = json!({
                "ownerKey": a.owner.key(),
                "activityKey": format!("{at}#{request_id}#{i}"),
                "activityType": a.activity_type,
                "subject": a.subject,
                "requestId": request_id,
                "requestType": r.kind.as_str(),
                "partnerNumber": r.customer,
                "channel": r.channel,
                "createdAt": at,
            });
            items.push(Self::put(&self.tables.activities, to_item(&activity)?, None)?);
        }

        let outbox = Item::from([
            ("requestId".to_owned(), s(&request_id)),
            ("pendingPartition".to_owned(), s(PENDING)),
            ("createdAt".to_owned(), s(&at)),
            ("status".to_owned(), s(PENDING)),
            ("requestType".to_owned(), s(r.kind.as_str())),
            ("messageGroupId".to_owned(), s(r.customer.as_str())),
            ("body".to_owned(), s(message)),
        ]);
        items.push(Self::put(&self.tables.outbox, outbox, Some("requestId"))?);

        if let (Some(claim), Some(answer)) = (&r.idempotency, r.stored_answer()) {
            let expires = r.submitted_at.unix_timestamp() + IDEMPOTENCY_TTL_SECONDS;
            let item = Item::from([
                ("idempotencyKey".to_owned(), s(claim.scope.as_str())),
                ("requestId".to_owned(), s(&request_id)),
                ("fingerprint".to_owned(), s(&answer.fingerprint)),
                ("answer".to_owned(), s(answer.body.to_string())),
                ("expiresAt".to_owned(), n(expires)),
            ]);
            items.push(Self::put(&self.tables.idempotency_keys, item, Some("idempotencyKey"))?);
        }
        Ok(items)
    }
}

/// Whether a cancelled transaction failed on the idempotency claim (its last item).
fn idempotency_claim_failed(err: &SdkError<TransactWriteItemsError>, claim_index: usize) -> bool {
    let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() else {
        return false;
    };
    e.cancellation_reasons()
        .get(claim_index)
        .and_then(|r| r.code())
        .is_some_and(|code| code == "ConditionalCheckFailed")
}

impl RequestWriter for WritePath {
    async fn find_answer(&self, scope: &IdempotencyScope) -> Result<Option<StoredAnswer>, StoreError> {
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.tables.idempotency_keys)
            .key("idempotencyKey", s(scope.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let field = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let request_id =
            portal_domain::ids::RequestId::parse(&field("requestId")).map_err(|e| StoreError(e.to_string()))?;
        let body = serde_json::from_str(&field("answer")).map_err(|e| StoreError(format!("stored answer: {e}")))?;
        Ok(Some(StoredAnswer { request_id, fingerprint: field("fingerprint"), body }))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.request_id, request_type = request.kind.as_str()))]
    async fn commit(&self, request: CustomerRequest) -> Result<CommitReceipt, WriteError> {
        let message = serde_json::to_string(&request.envelope()).map_err(|e| StoreError(e.to_string()))?;
        let items = self.transaction(&request, &message)?;
        let claim_index = items.len() - 1;
        let result = self.dynamo.transact_write_items().set_transact_items(Some(items)).send().await;
        if let Err(err) = result {
            if request.idempotency.is_some() && idempotency_claim_failed(&err, claim_index) {
                return Err(WriteError::IdempotencyKeyTaken);
            }
            return Err(store_error("TransactWriteItems", err).into());
        }
        let sent = deliver(
            &self.dynamo,
            &self.sqs,
            &self.tables.outbox,
            &self.queue_url,
            &request.request_id.to_string(),
            request.customer.as_str(),
            &message,
        )
        .await;
        Ok(CommitReceipt { message_sent: sent })
    }
}

/// Sends one outbox entry and marks it as sent. Returns whether it went out; a failure is
/// logged and left to the relay.
async fn deliver(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    outbox: &str,
    queue_url: &str,
    request_id: &str,
    group: &str,
    body: &str,
) -> bool {
    let sent = sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(request_id)
        .send()
        .await;
    let message_id = match sent {
        Ok(out) => out.message_id.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(request_id, error = %DisplayErrorContext(e), "message not sent; left pending for the relay");
            return false;
        }
    };
    let marked = dynamo
        .update_item()
        .table_name(outbox)
        .key("requestId", s(request_id))
        .update_expression("SET #st = :sent, sentAt = :at, messageId = :mid REMOVE pendingPartition")
        .condition_expression("#st = :pending")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":sent", s("SENT"))
        .expression_attribute_values(":pending", s(PENDING))
        .expression_attribute_values(":at", s(rfc3339(OffsetDateTime::now_utc())))
        .expression_attribute_values(":mid", s(message_id))
        .send()
        .await;
    if let Err(e) = marked {
        // The message is out; the relay may send it again, which the FIFO queue's
        // deduplication (and consumers deduplicating by request id) absorbs.
        tracing::warn!(request_id, error = %DisplayErrorContext(e), "message sent but outbox entry not marked");
    }
    true
}

/// What one relay run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelayReport {
    pub sent: usize,
    pub failed: usize,
}

/// Sends outbox entries whose message did not go out with their request.
#[derive(Debug, Clone)]
pub struct Relay {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    outbox: String,
    queue_url: String,
}

impl Relay {
    pub fn new(dynamo: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client, tables: &Tables, queue_url: String) -> Self {
        Self { dynamo, sqs, outbox: tables.outbox.clone(), queue_url }
    }

    /// Sends every pending entry created before `now - grace`, oldest first. The grace
    /// period keeps the relay from racing a request that is still sending its own message.
    pub async fn run(&self, grace: time::Duration) -> Result<RelayReport, StoreError> {
        let cutoff = rfc3339(OffsetDateTime::now_utc() - grace);
        let entries: Vec<Item> = self
            .dynamo
            .query()
            .table_name(&self.outbox)
            .index_name("pending")
            .key_condition_expression("pendingPartition = :p AND createdAt <= :cutoff")
            .expression_attribute_values(":p", s(PENDING))
            .expression_attribute_values(":cutoff", s(cutoff))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error("Query", e))?;
        let mut report = RelayReport::default();
        for entry in entries {
            let field = |k: &str| entry.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
            let ok = deliver(
                &self.dynamo,
                &self.sqs,
                &self.outbox,
                &self.queue_url,
                field("requestId"),
                field("messageGroupId"),
                field("body"),
            )
            .await;
            if ok { report.sent += 1 } else { report.failed += 1 }
        }
        Ok(report)
    }
}
