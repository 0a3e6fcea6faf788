//! Workers behind an SQS queue: one handler per message body, for the Lambda event source
//! (partial batch failures) and for local runs that take the queue's messages directly.

use crate::dynamo::store_error;
use portal_domain::ports::StoreError;
use serde_json::{Value, json};
use std::future::Future;

/// What one run of a worker did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WorkReport {
    pub done: usize,
    pub failed: usize,
}

/// Handles an SQS event's records; the answer names the failed ones, which alone are
/// delivered again (`ReportBatchItemFailures`).
pub async fn handle_event<F, Fut>(event: &Value, handle: F) -> (WorkReport, Value)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut report = WorkReport::default();
    let mut failures = Vec::new();
    for record in event["Records"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let id = record["messageId"].as_str().unwrap_or_default();
        match handle(record["body"].as_str().unwrap_or_default().to_owned()).await {
            Ok(()) => report.done += 1,
            Err(e) => {
                tracing::warn!(message_id = id, error = %e, "message not handled; delivered again");
                report.failed += 1;
                failures.push(json!({ "itemIdentifier": id }));
            }
        }
    }
    (report, json!({ "batchItemFailures": failures }))
}

/// Takes the queue's messages until it is empty, handles each and deletes the handled ones
/// (where no event source runs: locally and in tests). Stops at the first batch with a
/// failure, leaving the failed messages on the queue.
pub async fn drain<F, Fut>(sqs: &aws_sdk_sqs::Client, queue_url: &str, handle: F) -> Result<WorkReport, StoreError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut total = WorkReport::default();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .send()
            .await
            .map_err(|e| store_error("ReceiveMessage", e))?;
        let received = out.messages.unwrap_or_default();
        if received.is_empty() {
            return Ok(total);
        }
        let mut failed = 0;
        for m in &received {
            match handle(m.body.clone().unwrap_or_default()).await {
                Ok(()) => {
                    total.done += 1;
                    if let Some(receipt) = &m.receipt_handle {
                        sqs.delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(receipt)
                            .send()
                            .await
                            .map_err(|e| store_error("DeleteMessage", e))?;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "message not handled; left on the queue");
                    failed += 1;
                }
            }
        }
        total.failed += failed;
        if failed > 0 {
            return Ok(total);
        }
    }
}
