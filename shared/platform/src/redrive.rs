//! The operator's redrive: moves every message of a dead-letter queue back to its source
//! queue, once the reason it failed is fixed (`cargo run -p relay -- --redrive`).

use crate::dynamo::store_error;
use portal_domain::ports::StoreError;
use serde_json::Value;

/// How a message goes back: FIFO messages need their group and deduplication id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The requests queue: group = customer number (or the request for a message without
    /// one), deduplication id = request id, both from the envelope.
    RequestsFifo,
    Standard,
}

/// Moves every message from `from` to `to`; returns how many moved.
pub async fn redrive(sqs: &aws_sdk_sqs::Client, from: &str, to: &str, target: Target) -> Result<usize, StoreError> {
    let mut moved = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| store_error("ReceiveMessage", e))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(moved);
        }
        for m in messages {
            let body = m.body.clone().unwrap_or_default();
            let mut send = sqs.send_message().queue_url(to).message_body(&body);
            if target == Target::RequestsFifo {
                let envelope: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let request = envelope["requestId"].as_str().unwrap_or_default().to_owned();
                if request.is_empty() {
                    // Not a message of ours: left in the dead-letter queue for a person.
                    tracing::warn!(message_id = ?m.message_id, "not an envelope; left in the dead-letter queue");
                    continue;
                }
                let group =
                    envelope["customerNumber"].as_str().map_or_else(|| format!("UNASSIGNED-{request}"), str::to_owned);
                send = send.message_group_id(group).message_deduplication_id(request);
            }
            send.send().await.map_err(|e| store_error("SendMessage", e))?;
            if let Some(handle) = &m.receipt_handle {
                sqs.delete_message()
                    .queue_url(from)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| store_error("DeleteMessage", e))?;
            }
            moved += 1;
        }
    }
}
