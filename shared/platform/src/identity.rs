//! DynamoDB and SES adapters of the identity ports: logins (found through their
//! uniqueness claims, read consistently), sessions, single-use tokens, and mail.

use crate::config::Tables;
use crate::dynamo::{Item, condition_failed, from_item, n, s, store_error, to_item};
use aws_sdk_dynamodb::Client;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use portal_domain::entities::timestamp;
use portal_domain::identity::{
    LoginRecord, LoginStore, LoginThrottle, Mail, Mailer, OneTimeToken, SessionRecord, SessionStore, Throttled,
    TokenPurpose, TokenStore,
};
use portal_domain::ids::LoginId;
use portal_domain::ports::StoreError;
use secrecy::ExposeSecret;
use std::sync::Arc;
use time::OffsetDateTime;

async fn get_consistent(client: &Client, table: &str, key: &str, value: &str) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .key(key, s(value))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| store_error("GetItem", e))?;
    Ok(out.item)
}

#[derive(Debug, Clone)]
pub struct DynamoLogins {
    client: Client,
    tables: Arc<Tables>,
}

impl DynamoLogins {
    pub fn new(client: Client, tables: Arc<Tables>) -> Self {
        Self { client, tables }
    }
}

impl LoginStore for DynamoLogins {
    async fn by_claim(&self, claim: &str) -> Result<Option<LoginRecord>, StoreError> {
        let Some(item) = get_consistent(&self.client, &self.tables.login_claims, "claimKey", claim).await? else {
            return Ok(None);
        };
        let login_id = item.get("loginId").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let login_id = LoginId::parse(&login_id).map_err(|e| StoreError(e.to_string()))?;
        self.get(&login_id).await
    }

    async fn get(&self, login_id: &LoginId) -> Result<Option<LoginRecord>, StoreError> {
        let table = &self.tables.portal_logins;
        get_consistent(&self.client, table, "loginId", login_id.as_str())
            .await?
            .map(|i| from_item(table, i))
            .transpose()
    }

    async fn by_email(&self, email: &str) -> Result<Vec<LoginRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.portal_logins)
            .index_name("by-email")
            .key_condition_expression("email = :e")
            .expression_attribute_values(":e", s(email))
            .limit(5)
            .send()
            .await
            .map_err(|e| store_error("Query", e))?;
        let mut logins = Vec::new();
        for item in out.items.unwrap_or_default() {
            let Some(Ok(id)) = item.get("loginId").and_then(|v| v.as_s().ok()).map(|id| LoginId::parse(id)) else {
                continue;
            };
            logins.extend(self.get(&id).await?);
        }
        Ok(logins)
    }

    async fn set_password(&self, login_id: &LoginId, hash: &str) -> Result<u32, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.portal_logins)
            .key("loginId", s(login_id.as_str()))
            .update_expression(
                "SET passwordHash = :h, mustChangePassword = :no, failedLogins = :zero, passwordChangedAt = :at \
                 ADD sessionGeneration :one REMOVE passwordExpiresAt, lastFailedAt",
            )
            .condition_expression("attribute_exists(loginId)")
            .expression_attribute_values(":h", s(hash))
            .expression_attribute_values(":no", aws_sdk_dynamodb::types::AttributeValue::Bool(false))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", s(timestamp::format(OffsetDateTime::now_utc())))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        let generation = out.attributes.as_ref().and_then(|a| a.get("sessionGeneration")).and_then(|v| v.as_n().ok());
        generation.and_then(|g| g.parse().ok()).ok_or_else(|| StoreError("no session generation returned".into()))
    }
}

/// Throttled attempts in the rate-limit table: `failures` and `lockedUntil` (epoch
/// milliseconds) per subject; TTL removes idle entries after a day.
#[derive(Debug, Clone)]
pub struct DynamoThrottle {
    client: Client,
    table: String,
}

/// How long `begin` holds a subject for the attempt in flight.
const HOLD_MS: i64 = 5_000;

fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl DynamoThrottle {
    pub fn new(client: Client, tables: &Tables) -> Self {
        Self { client, table: tables.rate_limits.clone() }
    }
}

impl LoginThrottle for DynamoThrottle {
    async fn begin(&self, subject: &str, now: OffsetDateTime) -> Result<Result<u32, Throttled>, StoreError> {
        let now_ms = epoch_ms(now);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("limitKey", s(subject))
            .update_expression("SET lockedUntil = :hold, expiresAt = :exp")
            .condition_expression("attribute_not_exists(lockedUntil) OR lockedUntil <= :now")
            .expression_attribute_values(":hold", n(now_ms + HOLD_MS))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":exp", n(now.unix_timestamp() + 86_400))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        let number = |item: Option<&Item>, k: &str| {
            item.and_then(|i| i.get(k)).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok())
        };
        match result {
            Ok(out) => Ok(Ok(number(out.attributes.as_ref(), "failures").unwrap_or(0) as u32)),
            Err(e) if condition_failed(&e) => {
                let held = get_consistent(&self.client, &self.table, "limitKey", subject).await?;
                let until_ms = number(held.as_ref(), "lockedUntil").unwrap_or(now_ms + HOLD_MS);
                let until = OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000).unwrap_or(now);
                Ok(Err(Throttled { until }))
            }
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }

    async fn fail(&self, subject: &str, failures: u32, locked_until: OffsetDateTime) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("limitKey", s(subject))
            .update_expression("SET failures = :f, lockedUntil = :u")
            .expression_attribute_values(":f", n(failures))
            .expression_attribute_values(":u", n(epoch_ms(locked_until)))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }

    async fn clear(&self, subject: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("limitKey", s(subject))
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", e))?;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct DynamoSessions {
    client: Client,
    table: String,
}

impl DynamoSessions {
    pub fn new(client: Client, tables: &Tables) -> Self {
        Self { client, table: tables.sessions.clone() }
    }

    /// Token hashes of a login's sessions.
    async fn of_login(&self, login_id: &LoginId) -> Result<Vec<String>, StoreError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("by-login")
            .key_condition_expression("loginId = :l")
            .expression_attribute_values(":l", s(login_id.as_str()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error("Query", e))?;
        Ok(items.iter().filter_map(|i| i.get("tokenHash").and_then(|v| v.as_s().ok()).cloned()).collect())
    }
}

impl SessionStore for DynamoSessions {
    async fn create(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(session)?))
            .condition_expression("attribute_not_exists(tokenHash)")
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn get(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        get_consistent(&self.client, &self.table, "tokenHash", token_hash)
            .await?
            .map(|i| from_item(&self.table, i))
            .transpose()
    }

    async fn touch(&self, token_hash: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("tokenHash", s(token_hash))
            .update_expression("SET lastSeenAt = :at")
            .condition_expression("attribute_exists(tokenHash)")
            .expression_attribute_values(":at", s(timestamp::format(at)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Ended meanwhile (logout elsewhere): nothing to touch.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }

    async fn delete(&self, token_hash: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("tokenHash", s(token_hash))
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", e))?;
        Ok(())
    }

    async fn delete_all(&self, login_id: &LoginId) -> Result<usize, StoreError> {
        let hashes = self.of_login(login_id).await?;
        for hash in &hashes {
            self.delete(hash).await?;
        }
        Ok(hashes.len())
    }
}

#[derive(Debug, Clone)]
pub struct DynamoTokens {
    client: Client,
    table: String,
}

impl DynamoTokens {
    pub fn new(client: Client, tables: &Tables) -> Self {
        Self { client, table: tables.one_time_tokens.clone() }
    }
}

impl TokenStore for DynamoTokens {
    async fn put(&self, token: &OneTimeToken) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(token)?))
            .condition_expression("attribute_not_exists(tokenHash)")
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn get(&self, token_hash: &str) -> Result<Option<OneTimeToken>, StoreError> {
        get_consistent(&self.client, &self.table, "tokenHash", token_hash)
            .await?
            .map(|i| from_item(&self.table, i))
            .transpose()
    }

    async fn consume(&self, token_hash: &str, purpose: TokenPurpose, now_epoch: i64) -> Result<bool, StoreError> {
        let purpose = serde_dynamo::to_attribute_value(purpose).map_err(|e| StoreError(e.to_string()))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("tokenHash", s(token_hash))
            .update_expression("SET usedAt = :now")
            .condition_expression(
                "attribute_exists(tokenHash) AND purpose = :purpose AND attribute_not_exists(usedAt) AND expiresAt > :now",
            )
            .expression_attribute_values(":purpose", purpose)
            .expression_attribute_values(":now", n(now_epoch))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }
}

/// Sends mail through SES v2 from the configured sender.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: String) -> Self {
        Self { client, from }
    }
}

impl Mailer for SesMailer {
    async fn send(&self, mail: Mail) -> Result<(), StoreError> {
        let content =
            |text: &str| Content::builder().data(text).charset("UTF-8").build().map_err(|e| store_error("Content", e));
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(Body::builder().text(content(mail.text.expose_secret())?).build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            // Only the error code: SES messages can quote the recipient's address.
            .map_err(|e| {
                crate::metrics::count("MailsFailed", None);
                StoreError(format!("SendEmail failed: {}", e.code().unwrap_or("no response")))
            })?;
        crate::metrics::count("MailsSent", None);
        Ok(())
    }
}

/// The queue between the request path of a password reset and the worker that mails it
/// (`PasswordResetQueue`). The message holds the name as typed, nothing else.
#[derive(Debug, Clone)]
pub struct SqsResetQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsResetQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        Self { client, url }
    }
}

/// The body of a queued reset request.
pub fn reset_request_body(username_or_email: &str) -> String {
    serde_json::json!({ "usernameOrEmail": username_or_email }).to_string()
}

/// The name of a queued reset request; `None` for a body that is not one.
pub fn reset_request_of(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value.get("usernameOrEmail")?.as_str().map(str::to_owned)
}

impl portal_domain::identity::ResetQueue for SqsResetQueue {
    async fn enqueue(&self, username_or_email: &str) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(reset_request_body(username_or_email))
            .send()
            .await
            .map_err(|e| store_error("SendMessage", e))?;
        Ok(())
    }
}

/// Mails the reset of one queued request ([`portal_domain::identity::access::AccessService::send_reset`]).
/// A body that is no reset request is dropped (logged): delivering it again cannot help.
pub async fn send_queued_reset(access: &crate::live::LiveAccess, body: String) -> Result<(), StoreError> {
    let Some(name) = reset_request_of(&body) else {
        tracing::warn!("not a reset request; dropped");
        return Ok(());
    };
    access.send_reset(&name).await.map_err(|e| match e {
        portal_domain::identity::access::AccessError::Store(e) => e,
        other => StoreError(other.to_string()),
    })
}
