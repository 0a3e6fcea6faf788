//! The one write path of every customer request (transactional outbox):
//!
//! 1. one DynamoDB transaction writes the transaction record, the activities, the mirror
//!    changes the request implies (conditional on the version the rules read), the outbox
//!    entry holding the downstream message, and the idempotency claim with the answer;
//! 2. the message is sent to the FIFO queue (group = customer number, deduplication id =
//!    request id), unless an older message of the same customer is still pending: then
//!    it waits for the [`Relay`], which sends each customer's messages in order;
//! 3. the outbox entry is marked as sent.
//!
//! If step 2 or 3 fails the request is still committed and answered: its outbox entry
//! stays pending and the relay sends it later. Nothing is sent for a transaction that did
//! not commit.

use crate::config::Tables;
use crate::dynamo::{Item, n, s, store_error, to_item};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, Select, TransactWriteItem, Update};
use aws_smithy_types::error::display::DisplayErrorContext;
use portal_domain::entities::timestamp;
use portal_domain::ports::{RequestWriter, StoreError};
use portal_domain::requests::{
    CommitReceipt, CustomerRequest, IdempotencyScope, MirrorObject, MirrorTable, MirrorUpdate, StoredAnswer, WriteError,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// Sparse index of the outbox: only pending entries carry `pendingCustomer`.
const PENDING_INDEX: &str = "pending-by-customer";
/// How long a stored answer is replayed for its idempotency key.
const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;
/// How long a sent outbox entry is kept (as proof of delivery) before TTL removes it.
const SENT_TTL_SECONDS: i64 = 30 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct WritePath {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    tables: Arc<Tables>,
    queue_url: String,
}

/// What a failed condition of a transaction item means.
#[derive(Clone)]
enum Meaning {
    IdempotencyKeyTaken,
    Conflict,
    ClaimTaken(String),
    TokenNotUsable,
}

/// The transaction items whose conditions can fail, by index.
type Layout = Vec<(usize, Meaning)>;

impl WritePath {
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        tables: Arc<Tables>,
        queue_url: String,
    ) -> Self {
        Self { dynamo, sqs, tables, queue_url }
    }

    fn put(table: &str, item: Item, condition_key: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(table).set_item(Some(item));
        if let Some(key) = condition_key {
            put = put.condition_expression(format!("attribute_not_exists({key})"));
        }
        let put = put.build().map_err(|e| store_error("Put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn update(update: aws_sdk_dynamodb::types::builders::UpdateBuilder) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder().update(update.build().map_err(|e| store_error("Update", e))?).build())
    }

    /// The transaction item of a mirror change, and what its condition failing means.
    fn mirror_update(&self, update: &MirrorUpdate) -> Result<(TransactWriteItem, Meaning), StoreError> {
        let t = &self.tables;
        Ok(match update {
            MirrorUpdate::MeterLastReadings { customer, meter, last_readings, expected_version } => {
                let readings = serde_dynamo::to_attribute_value(last_readings)
                    .map_err(|e| StoreError(format!("last readings do not map: {e}")))?;
                let condition = if *expected_version == 0 {
                    "attribute_exists(meterNumber) AND (attribute_not_exists(version) OR version = :expected)"
                } else {
                    "attribute_exists(meterNumber) AND version = :expected"
                };
                let update = Update::builder()
                    .table_name(&t.meters)
                    .key("partnerNumber", s(customer.as_str()))
                    .key("meterNumber", s(meter.as_str()))
                    .update_expression("SET lastReadings = :readings, version = :next")
                    .condition_expression(condition)
                    .expression_attribute_values(":readings", readings)
                    .expression_attribute_values(":expected", n(expected_version))
                    .expression_attribute_values(":next", n(expected_version + 1));
                (Self::update(update)?, Meaning::Conflict)
            }
            MirrorUpdate::CreateLogin(login) => {
                (Self::put(&t.portal_logins, to_item(login.as_ref())?, Some("loginId"))?, Meaning::Conflict)
            }
            MirrorUpdate::Claim { key, login_id } => {
                let item = Item::from([("claimKey".to_owned(), s(key)), ("loginId".to_owned(), s(login_id.as_str()))]);
                (Self::put(&t.login_claims, item, Some("claimKey"))?, Meaning::ClaimTaken(key.clone()))
            }
            MirrorUpdate::ReleaseClaim { key, login_id } => {
                let delete = aws_sdk_dynamodb::types::Delete::builder()
                    .table_name(&t.login_claims)
                    .key("claimKey", s(key))
                    .condition_expression("attribute_not_exists(claimKey) OR loginId = :login")
                    .expression_attribute_values(":login", s(login_id.as_str()))
                    .build()
                    .map_err(|e| store_error("Delete", e))?;
                (TransactWriteItem::builder().delete(delete).build(), Meaning::Conflict)
            }
            MirrorUpdate::ConsumeToken { token_hash, purpose, now_epoch } => {
                let purpose = serde_dynamo::to_attribute_value(purpose).map_err(|e| StoreError(e.to_string()))?;
                let update = Update::builder()
                    .table_name(&t.one_time_tokens)
                    .key("tokenHash", s(token_hash))
                    .update_expression("SET usedAt = :now")
                    .condition_expression(
                        "attribute_exists(tokenHash) AND purpose = :purpose AND attribute_not_exists(usedAt) AND expiresAt > :now",
                    )
                    .expression_attribute_values(":purpose", purpose)
                    .expression_attribute_values(":now", n(now_epoch));
                (Self::update(update)?, Meaning::TokenNotUsable)
            }
            MirrorUpdate::SetLoginStatus { login_id, status } => {
                let status = serde_dynamo::to_attribute_value(status).map_err(|e| StoreError(e.to_string()))?;
                let update = Update::builder()
                    .table_name(&t.portal_logins)
                    .key("loginId", s(login_id.as_str()))
                    .update_expression("SET #st = :status")
                    .condition_expression("attribute_exists(loginId)")
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":status", status);
                (Self::update(update)?, Meaning::Conflict)
            }
            MirrorUpdate::Pending { object, set, expect, .. } => {
                let (table, sort_key) = match object {
                    MirrorObject::Partner(c) => (&t.business_partners, (c, None)),
                    MirrorObject::Account(c, a) => (&t.contract_accounts, (c, Some(("accountNumber", a.as_str())))),
                    MirrorObject::BankDetails(c, a) => (&t.bank_details, (c, Some(("accountNumber", a.as_str())))),
                    MirrorObject::InstallmentPlan(c, a) => {
                        (&t.installment_plans, (c, Some(("accountNumber", a.as_str()))))
                    }
                    MirrorObject::Contract(c, n) => (&t.contracts, (c, Some(("contractNumber", n.as_str())))),
                };
                let (customer, sort) = sort_key;
                let mut update = Update::builder().table_name(table).key("partnerNumber", s(customer.as_str()));
                if let Some((name, value)) = sort {
                    update = update.key(name, s(value));
                }
                let mut assignments = Vec::new();
                for (i, (name, value)) in set.iter().enumerate() {
                    update = update
                        .expression_attribute_names(format!("#f{i}"), name)
                        .expression_attribute_values(format!(":v{i}"), attribute(value)?);
                    assignments.push(format!("#f{i} = :v{i}"));
                }
                // Not over what is left of an entity the CRM deleted.
                let mut conditions =
                    vec!["attribute_exists(partnerNumber)".to_owned(), "attribute_not_exists(tombstone)".to_owned()];
                for (i, (name, value)) in expect.iter().enumerate() {
                    update = update.expression_attribute_names(format!("#e{i}"), name);
                    if value.is_null() {
                        conditions.push(format!("(attribute_not_exists(#e{i}) OR attribute_type(#e{i}, :null))"));
                        update = update.expression_attribute_values(":null", s("NULL"));
                    } else {
                        conditions.push(format!("#e{i} = :e{i}"));
                        update = update.expression_attribute_values(format!(":e{i}"), attribute(value)?);
                    }
                }
                let update = update
                    .update_expression(format!("SET {}", assignments.join(", ")))
                    .condition_expression(conditions.join(" AND "));
                (Self::update(update)?, Meaning::Conflict)
            }
            MirrorUpdate::Insert { table, item } => {
                let (name, key) = match table {
                    MirrorTable::Documents => (&t.documents, "documentId"),
                };
                (Self::put(name, to_item(item)?, Some(key))?, Meaning::Conflict)
            }
            MirrorUpdate::AddLoginPartner { login_id, customer } => {
                let list = AttributeValue::L(vec![s(customer.as_str())]);
                let update = Update::builder()
                    .table_name(&t.portal_logins)
                    .key("loginId", s(login_id.as_str()))
                    .update_expression("SET partnerNumbers = list_append(partnerNumbers, :added)")
                    .condition_expression("attribute_exists(loginId) AND NOT contains(partnerNumbers, :customer)")
                    .expression_attribute_values(":added", list)
                    .expression_attribute_values(":customer", s(customer.as_str()));
                (Self::update(update)?, Meaning::Conflict)
            }
        })
    }

    /// The transaction's items, and where the conditional ones are.
    fn transaction(&self, r: &CustomerRequest, message: &str) -> Result<(Vec<TransactWriteItem>, Layout), StoreError> {
        let request_id = r.request_id.to_string();
        let at = timestamp::format(r.submitted_at);
        let mut record = match &r.record {
            Value::Object(fields) => fields.clone(),
            _ => serde_json::Map::new(),
        };
        record.extend([
            ("requestId".to_owned(), json!(request_id)),
            ("requestType".to_owned(), json!(r.kind.as_str())),
            ("channel".to_owned(), json!(r.channel)),
            ("submittedAt".to_owned(), json!(at)),
            ("status".to_owned(), json!("SUBMITTED")),
        ]);
        // What a rejection by the CRM puts back on the mirror object the change showed at once.
        if let Some(previous) = r.mirror_updates.iter().find_map(|u| match u {
            MirrorUpdate::Pending { previous, .. } if !previous.is_empty() => Some(previous.clone()),
            _ => None,
        }) {
            record.insert("restoreOnRejection".to_owned(), Value::Object(previous));
        }
        // A request without a customer has no partnerNumber at all (the by-customer index is sparse).
        if let Some(customer) = &r.customer {
            record.insert("partnerNumber".to_owned(), json!(customer));
        }
        let mut items = vec![Self::put(self.tables.record_table(r.kind), to_item(&record)?, Some("requestId"))?];

        for (i, a) in r.activities.iter().enumerate() {
            let mut activity = json!({
                "ownerKey": a.owner.key(),
                "activityKey": format!("{at}#{request_id}#{i}"),
                "activityType": a.activity_type,
                "subject": a.subject,
                "text": a.text,
                "routeTo": a.route_to,
                "requestId": request_id,
                "requestType": r.kind.as_str(),
                "channel": r.channel,
                "createdAt": at,
            });
            if let Some(customer) = &r.customer {
                activity["partnerNumber"] = json!(customer);
            }
            items.push(Self::put(&self.tables.activities, to_item(&activity)?, None)?);
        }

        let mut layout = Layout::new();
        for update in &r.mirror_updates {
            let (item, meaning) = self.mirror_update(update)?;
            layout.push((items.len(), meaning));
            items.push(item);
        }

        let order_key = r.order_key();
        let outbox = Item::from([
            ("requestId".to_owned(), s(&request_id)),
            ("pendingCustomer".to_owned(), s(&order_key)),
            ("createdAt".to_owned(), s(&at)),
            ("status".to_owned(), s("PENDING")),
            ("requestType".to_owned(), s(r.kind.as_str())),
            ("messageGroupId".to_owned(), s(&order_key)),
            ("body".to_owned(), s(message)),
        ]);
        items.push(Self::put(&self.tables.outbox, outbox, Some("requestId"))?);

        if let (Some(c), Some(answer)) = (&r.idempotency, r.stored_answer()) {
            let expires = r.submitted_at.unix_timestamp() + IDEMPOTENCY_TTL_SECONDS;
            let item = Item::from([
                ("idempotencyKey".to_owned(), s(c.scope.as_str())),
                ("requestId".to_owned(), s(&request_id)),
                ("fingerprint".to_owned(), s(&answer.fingerprint)),
                ("answer".to_owned(), s(answer.body.to_string())),
                ("expiresAt".to_owned(), n(expires)),
            ]);
            layout.push((items.len(), Meaning::IdempotencyKeyTaken));
            items.push(Self::put(&self.tables.idempotency_keys, item, Some("idempotencyKey"))?);
        }
        Ok((items, layout))
    }

    /// Whether the customer has a pending message older than `created_at`: then this one
    /// must wait for it (order per customer).
    async fn older_pending(&self, customer: &str, created_at: &str) -> Result<bool, StoreError> {
        let out = self
            .dynamo
            .query()
            .table_name(&self.tables.outbox)
            .index_name(PENDING_INDEX)
            .key_condition_expression("pendingCustomer = :c AND createdAt < :at")
            .expression_attribute_values(":c", s(customer))
            .expression_attribute_values(":at", s(created_at))
            .select(Select::Count)
            .limit(1)
            .send()
            .await
            .map_err(|e| store_error("Query", e))?;
        Ok(out.count > 0)
    }
}

fn attribute(value: &Value) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| StoreError(format!("value does not map: {e}")))
}

/// Maps a cancelled transaction to the rule it broke (a lost idempotency race wins over
/// everything else), or to nothing (a storage error).
fn cancellation(err: &SdkError<TransactWriteItemsError>, layout: &Layout) -> Option<WriteError> {
    let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() else {
        return None;
    };
    let reasons = e.cancellation_reasons();
    let failed = |i: usize| {
        reasons
            .get(i)
            .and_then(|r| r.code())
            .is_some_and(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict")
    };
    let mut broken: Vec<&Meaning> = layout.iter().filter(|(i, _)| failed(*i)).map(|(_, m)| m).collect();
    broken.sort_by_key(|m| !matches!(m, Meaning::IdempotencyKeyTaken));
    broken.first().map(|m| match m {
        Meaning::IdempotencyKeyTaken => WriteError::IdempotencyKeyTaken,
        Meaning::Conflict => WriteError::Conflict,
        Meaning::ClaimTaken(key) => WriteError::ClaimTaken(key.clone()),
        Meaning::TokenNotUsable => WriteError::TokenNotUsable,
    })
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

    // `message_request_id`: the request id of the transaction record and the message (its
    // deduplication id), beside the invocation's `request_id` of the enclosing span.
    #[tracing::instrument(skip_all, fields(message_request_id = %request.request_id, request_type = request.kind.as_str()))]
    async fn commit(&self, request: CustomerRequest) -> Result<CommitReceipt, WriteError> {
        let message = serde_json::to_string(&request.envelope()).map_err(|e| StoreError(e.to_string()))?;
        let (items, layout) = self.transaction(&request, &message)?;
        let request_id = request.request_id.to_string();
        // The request id as the transaction's token: DynamoDB applies a retried transaction
        // (an attempt whose answer was lost) once and answers it as applied.
        let written = self
            .dynamo
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(&request_id)
            .send()
            .await;
        if let Err(err) = written {
            return Err(cancellation(&err, &layout).unwrap_or_else(|| store_error("TransactWriteItems", err).into()));
        }
        crate::metrics::count("RequestsCommitted", Some(crate::metrics::Detail::RequestType(request.kind.as_str())));
        tracing::info!("request committed");
        let order_key = request.order_key();
        let customer = order_key.as_str();
        match self.older_pending(customer, &timestamp::format(request.submitted_at)).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(
                    request_id,
                    "an older message of the customer is pending; the relay sends both in order"
                );
                crate::metrics::count("MessagesLeftForRelay", None);
                return Ok(CommitReceipt { message_sent: false });
            }
            Err(e) => {
                tracing::warn!(request_id, error = %e, "pending check failed; left for the relay");
                crate::metrics::count("MessagesLeftForRelay", None);
                return Ok(CommitReceipt { message_sent: false });
            }
        }
        let sent =
            deliver(&self.dynamo, &self.sqs, &self.tables.outbox, &self.queue_url, &request_id, customer, &message)
                .await;
        if !sent {
            crate::metrics::count("MessagesLeftForRelay", None);
        }
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
    let now = OffsetDateTime::now_utc();
    let marked = dynamo
        .update_item()
        .table_name(outbox)
        .key("requestId", s(request_id))
        .update_expression("SET #st = :sent, sentAt = :at, messageId = :mid, expiresAt = :exp REMOVE pendingCustomer")
        .condition_expression("#st = :pending")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":sent", s("SENT"))
        .expression_attribute_values(":pending", s("PENDING"))
        .expression_attribute_values(":at", s(timestamp::format(now)))
        .expression_attribute_values(":mid", s(message_id))
        .expression_attribute_values(":exp", n(now.unix_timestamp() + SENT_TTL_SECONDS))
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
    /// Entries left for a later run: younger than the grace period, or behind an older
    /// entry of the same customer that is young or failed.
    pub deferred: usize,
}

/// Sends outbox entries whose message did not go out with their request, each customer's
/// in the order of their requests.
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

    /// Sends every pending entry created before `now - grace`. The grace period keeps the
    /// relay from racing a request that is still sending its own message.
    pub async fn run(&self, grace: time::Duration) -> Result<RelayReport, StoreError> {
        let cutoff = timestamp::format(OffsetDateTime::now_utc() - grace);
        // The index holds pending entries only, so scanning it reads nothing else.
        let entries: Vec<Item> = self
            .dynamo
            .scan()
            .table_name(&self.outbox)
            .index_name(PENDING_INDEX)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error("Scan", e))?;
        let field = |e: &Item, k: &str| e.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let mut by_customer: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        for entry in entries {
            by_customer.entry(field(&entry, "pendingCustomer")).or_default().push(entry);
        }
        let mut report = RelayReport::default();
        let oldest = by_customer.values().flatten().map(|e| field(e, "createdAt")).min();
        let pending = by_customer.values().map(Vec::len).sum::<usize>();
        for (_, mut queue) in by_customer {
            queue.sort_by_key(|e| field(e, "createdAt"));
            let mut blocked = false;
            for entry in &queue {
                if blocked || field(entry, "createdAt") > cutoff {
                    blocked = true;
                    report.deferred += 1;
                    continue;
                }
                let ok = deliver(
                    &self.dynamo,
                    &self.sqs,
                    &self.outbox,
                    &self.queue_url,
                    &field(entry, "requestId"),
                    &field(entry, "messageGroupId"),
                    &field(entry, "body"),
                )
                .await;
                if ok {
                    report.sent += 1;
                } else {
                    report.failed += 1;
                    blocked = true;
                }
            }
        }
        // Every run reports, also when nothing is pending: no data means no relay
        // (OutboxBacklogAlarm).
        let age = oldest
            .and_then(|at| OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).ok())
            .map_or(0.0, |at| (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0).floor());
        use crate::metrics::Unit::{Count, Seconds};
        crate::metrics::emit(
            &[
                ("RelaySent", report.sent as f64, Count),
                ("RelaySendFailed", report.failed as f64, Count),
                ("RelayDeferred", report.deferred as f64, Count),
                ("OutboxPending", pending as f64, Count),
                ("OutboxOldestPendingAgeSeconds", age, Seconds),
            ],
            None,
        );
        Ok(report)
    }
}
