//! The inbound sync's adapter: applies what the CRM reports (`portal_domain::sync`) to the
//! mirror and the transaction records, and handles the inbound queue's batches — one bad
//! message neither blocks nor repeats the others.
//!
//! Ordering per entity comes from versions, not from the queue: every write is conditional
//! on the stored `syncVersion` being older, so a late or redelivered message is ignored.
//! A message that can never be applied goes to the inbound dead-letter queue at once, with
//! the reason (no personal data) as a message attribute; a storage failure is reported as
//! a batch item failure, so SQS delivers that message again (and after five attempts moves
//! it to the dead-letter queue itself).

use crate::config::Tables;
use crate::dynamo::{Item, condition_failed, n, s, store_error, to_item};
use crate::import::{apply_login, reading_key};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use portal_domain::documents::object_key;
use portal_domain::entities::{LastReading, MeterRecord};
use portal_domain::export::check_reading_value;
use portal_domain::ids::CustomerNumber;
use portal_domain::ports::StoreError;
use portal_domain::sync::{Decision, SyncWrite, Table, Unusable, decide};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Every write met the same or a newer version: a repeat or a late message.
    Ignored,
    /// Can never be applied (sent to the dead-letter queue).
    Unusable(String),
}

/// What one batch or poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub applied: usize,
    pub ignored: usize,
    pub dead_lettered: usize,
    /// Left on the queue for another attempt.
    pub failed: usize,
}

#[derive(Debug, Clone)]
pub struct InboundSync {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    tables: Arc<Tables>,
    bucket: String,
    dead_letter_url: String,
    /// Tells customers who consented what became of their requests, and approved logins
    /// their initial password.
    mailer: crate::identity::SesMailer,
    initial_password_lifetime: time::Duration,
}

/// Why a write was not made.
enum Skip {
    Stale,
    Unusable(String),
    Store(StoreError),
}

impl From<StoreError> for Skip {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The entity type a message is about, as a metric dimension: one of a fixed set
/// (`requestStatus` for a request's outcome, `unknown` for anything unreadable), never a
/// value from the message as such.
pub fn entity_type(body: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "businessPartner",
        "contractAccount",
        "contract",
        "installation",
        "meter",
        "installmentPlan",
        "meterReading",
        "document",
        "product",
        "portalLogin",
        "codeListEntry",
        "inboxConfiguration",
    ];
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        message_type: Option<String>,
        entity_type: Option<String>,
    }
    let Ok(head) = serde_json::from_str::<Head>(body) else { return "unknown" };
    if head.message_type.as_deref() == Some("crm.request-status-changed") {
        return "requestStatus";
    }
    head.entity_type.and_then(|t| KNOWN.iter().find(|k| **k == t).copied()).unwrap_or("unknown")
}

const NEWER_ONLY: &str = "attribute_not_exists(syncVersion) OR syncVersion < :v";

impl InboundSync {
    pub fn new(clients: &crate::aws::Clients, config: &crate::config::Config) -> Self {
        Self {
            dynamo: clients.dynamo.clone(),
            sqs: clients.sqs.clone(),
            s3: clients.s3.clone(),
            tables: config.tables.clone(),
            bucket: config.documents_bucket.clone(),
            dead_letter_url: config.inbound_dead_letter_url.clone(),
            mailer: crate::identity::SesMailer::new(clients.ses.clone(), config.mail_from.clone()),
            initial_password_lifetime: config.registration_policy().initial_password_lifetime,
        }
    }

    fn table(&self, table: Table) -> &str {
        let t = &self.tables;
        match table {
            Table::BusinessPartners => &t.business_partners,
            Table::ContractAccounts => &t.contract_accounts,
            Table::BankDetails => &t.bank_details,
            Table::Contracts => &t.contracts,
            Table::Installations => &t.installations,
            Table::InstallmentPlans => &t.installment_plans,
            Table::Documents => &t.documents,
            Table::Products => &t.products,
            Table::CodeLists => &t.code_lists,
            Table::Meters => &t.meters,
        }
    }

    /// Applies one message body.
    pub async fn apply(&self, body: &str) -> Result<Outcome, StoreError> {
        let decision = match decide(body) {
            Ok(d) => d,
            Err(Unusable(reason)) => return Ok(Outcome::Unusable(reason)),
        };
        let Decision { message_id, version, writes } = decision;
        let mut applied = false;
        // A contract's end reaches its meters only with the contract itself: not from an
        // older version, nor over a deleted contract.
        let mut entity_stale = false;
        for write in writes {
            if entity_stale && matches!(write, SyncWrite::SupplyEnd { .. }) {
                continue;
            }
            let is_put = matches!(write, SyncWrite::Put { .. });
            match self.write(write, version).await {
                Ok(()) => applied = true,
                Err(Skip::Stale) => entity_stale |= is_put,
                Err(Skip::Unusable(reason)) => return Ok(Outcome::Unusable(reason)),
                Err(Skip::Store(e)) => return Err(e),
            }
        }
        tracing::info!(message_id, version, applied, "inbound message");
        Ok(if applied { Outcome::Applied } else { Outcome::Ignored })
    }

    /// The item with its `syncVersion`, unless the stored one has this version or a newer one.
    async fn put_newer(&self, table: &str, mut item: Item, version: u64) -> Result<(), Skip> {
        item.insert("syncVersion".to_owned(), n(version));
        let result = self
            .dynamo
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(NEWER_ONLY)
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(Skip::Stale),
            Err(e) => Err(store_error("PutItem", e).into()),
        }
    }

    /// A deleted entity's versioned tombstone in the item's place: a late, older change of
    /// it (or a redelivered earlier one) finds a newer version and is ignored.
    async fn put_tombstone(&self, table: &str, mut key: Item, version: u64) -> Result<(), Skip> {
        key.insert(crate::dynamo::TOMBSTONE.to_owned(), AttributeValue::Bool(true));
        self.put_newer(table, key, version).await
    }

    async fn write(&self, write: SyncWrite, version: u64) -> Result<(), Skip> {
        match write {
            SyncWrite::Put { table, item } => self.put_newer(self.table(table), to_item(&item)?, version).await,
            SyncWrite::Delete { table, key } => {
                let key: Item = key.into_iter().map(|(k, v)| (k.to_owned(), s(v))).collect();
                self.put_tombstone(self.table(table), key, version).await
            }
            SyncWrite::Reading { owner, reading } => self.reading(&owner, reading, version).await,
            SyncWrite::DeleteReading { owner, meter, register, date } => {
                self.delete_reading(&owner, &meter, &register, date, version).await
            }
            SyncWrite::SupplyEnd { owner, installation_id, end } => {
                self.supply_end(&owner, &installation_id, end, version).await
            }
            SyncWrite::Meter { owner, meter } => self.meter(&owner, *meter, version).await,
            SyncWrite::File { owner, document, bytes } => {
                // Only a newer document replaces the file (its record follows, conditionally).
                let key = HashMap::from([
                    ("partnerNumber".to_owned(), s(owner.as_str())),
                    ("documentId".to_owned(), s(document.document_id.as_str())),
                ]);
                let stored = self
                    .dynamo
                    .get_item()
                    .table_name(&self.tables.documents)
                    .set_key(Some(key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| store_error("GetItem", e))?;
                let stored_version =
                    stored.item.and_then(|i| i.get("syncVersion").and_then(|v| v.as_n().ok()?.parse::<u64>().ok()));
                if stored_version.is_some_and(|v| v >= version) {
                    return Err(Skip::Stale);
                }
                self.s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(object_key(&owner, &document.document_id))
                    .content_type(&document.media_type)
                    .body(bytes.into())
                    .send()
                    .await
                    .map_err(|e| store_error("PutObject", e))?;
                Ok(())
            }
            SyncWrite::Login(login) => match apply_login(&self.dynamo, &self.tables, &login, Some(version)).await? {
                Some(applied) => {
                    if applied.approved {
                        self.approve(&login).await?;
                    }
                    Ok(())
                }
                None => Err(Skip::Stale),
            },
            SyncWrite::Status { request_id, kind, status, reason, at } => {
                let rejected = status == portal_domain::sync::RequestStatus::Rejected;
                let reason_text = reason.clone();
                let table = self.tables.record_table(kind);
                let at = portal_domain::entities::timestamp::format(at);
                let status = serde_dynamo::to_attribute_value(status).map_err(|e| StoreError(e.to_string()))?;
                let reason = reason.map_or(AttributeValue::Null(true), s);
                let result = self
                    .dynamo
                    .update_item()
                    .table_name(table)
                    .key("requestId", s(request_id.to_string()))
                    .update_expression("SET #st = :st, statusReason = :r, statusChangedAt = :at")
                    .condition_expression(
                        "attribute_exists(requestId) AND (attribute_not_exists(statusChangedAt) OR statusChangedAt < :at)",
                    )
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":st", status)
                    .expression_attribute_values(":r", reason)
                    .expression_attribute_values(":at", s(at))
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                    .send()
                    .await;
                match result {
                    Ok(out) => {
                        let record = out.attributes.unwrap_or_default();
                        // A rejected change no longer shows its values: the CRM's come back.
                        let restore = if rejected {
                            record.get("restoreOnRejection").and_then(|v| v.as_m().ok()).cloned()
                        } else {
                            None
                        };
                        self.clear_marker(kind, &record, &request_id.to_string(), restore).await?;
                        self.tell_outcome(&record, kind, &request_id, (rejected, reason_text.as_deref())).await;
                        Ok(())
                    }
                    Err(e) if condition_failed(&e) => {
                        let found = self
                            .dynamo
                            .get_item()
                            .table_name(table)
                            .key("requestId", s(request_id.to_string()))
                            .consistent_read(true)
                            .send()
                            .await
                            .map_err(|e| store_error("GetItem", e))?;
                        match found.item {
                            Some(_) => Err(Skip::Stale),
                            None => Err(Skip::Unusable(format!("no {} request {request_id}", kind.as_str()))),
                        }
                    }
                    Err(e) => Err(store_error("UpdateItem", e).into()),
                }
            }
        }
    }

    /// The CRM approved a login that waited for it: a new initial password, valid from now
    /// on for the configured lifetime, and the mail that carries it to the login's address.
    /// The password is set only while the login is still unused (`mustChangePassword`), so a
    /// redelivered approval after the first sign-in changes nothing.
    async fn approve(&self, login: &portal_domain::entities::PortalLogin) -> Result<(), Skip> {
        use portal_domain::identity::Mailer;
        let now = time::OffsetDateTime::now_utc();
        let approval = portal_domain::identity::registration::approval(
            &login.email.to_lowercase(),
            &login.username,
            now,
            self.initial_password_lifetime,
        );
        let result = self
            .dynamo
            .update_item()
            .table_name(&self.tables.portal_logins)
            .key("loginId", s(login.login_id.as_str()))
            .update_expression("SET passwordHash = :h, passwordExpiresAt = :x, mustChangePassword = :t")
            .condition_expression("attribute_exists(loginId) AND mustChangePassword = :t")
            .expression_attribute_values(":h", s(&approval.password_hash))
            .expression_attribute_values(
                ":x",
                s(portal_domain::entities::timestamp::format(approval.password_expires_at)),
            )
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if condition_failed(&e) => return Ok(()),
            Err(e) => return Err(store_error("UpdateItem", e).into()),
        }
        if let Err(e) = self.mailer.send(approval.mail).await {
            // The login is active; the customer can get a password by reset.
            tracing::error!(login_id = %login.login_id, error = %e, "initial password mail not sent");
        }
        Ok(())
    }

    /// A customer who consented to notifications is told the outcome of a request by mail.
    /// Best effort: the outcome is recorded and shown in `GET /v1/me/requests` either way, and
    /// a failed mail is logged (without the address) rather than retried.
    async fn tell_outcome(
        &self,
        record: &Item,
        kind: portal_domain::requests::RequestKind,
        request_id: &portal_domain::ids::RequestId,
        (rejected, reason): (bool, Option<&str>),
    ) {
        use portal_domain::identity::{Mail, Mailer};
        use portal_domain::sync::{RequestStatus, outcome_mail};
        let field = |k: &str| record.get(k).and_then(|v| v.as_s().ok()).cloned();
        let Some(customer) = field("partnerNumber") else { return };
        let key = HashMap::from([("partnerNumber".to_owned(), s(customer))]);
        let partner: Option<portal_domain::entities::BusinessPartner> =
            match crate::dynamo::get(&self.dynamo, &self.tables.business_partners, key).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "outcome notice: customer not read");
                    return;
                }
            };
        let Some(to) = partner.filter(|p| p.notification_consent).and_then(|p| p.email) else { return };
        let status = if rejected { RequestStatus::Rejected } else { RequestStatus::Processed };
        let submitted = field("submittedAt").unwrap_or_default();
        let (subject, text) = outcome_mail(kind, request_id, &submitted, status, reason);
        if let Err(e) = self.mailer.send(Mail { to, subject, text: text.into() }).await {
            tracing::warn!(error = %e, "outcome notice not sent");
        }
    }

    /// Once the CRM has decided a request, the mirror object stops showing it as pending
    /// (if it still shows this request). After a rejection the CRM sends the entity again
    /// to put back values the change had shown at once.
    async fn clear_marker(
        &self,
        kind: portal_domain::requests::RequestKind,
        record: &Item,
        request_id: &str,
        restore: Option<HashMap<String, AttributeValue>>,
    ) -> Result<(), Skip> {
        use portal_domain::requests::RequestKind as K;
        let field = |k: &str| record.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let t = &self.tables;
        let (table, sort, marker, path) = match kind {
            K::ContactDataChange => (&t.business_partners, None, "pendingContactChange", "#m"),
            K::CustomerDataChange => (&t.business_partners, None, "pendingDataChange", "#m.requestId"),
            K::BankDetailsChange | K::MandateRevocation => {
                (&t.bank_details, Some(("accountNumber", field("accountNumber"))), "pendingChange", "#m")
            }
            K::BillingAddressChange => {
                (&t.contract_accounts, Some(("accountNumber", field("accountNumber"))), "pendingChange", "#m")
            }
            K::InstallmentChange => {
                (&t.installment_plans, Some(("accountNumber", field("accountNumber"))), "pendingChange", "#m.requestId")
            }
            K::ContractTermination => {
                (&t.contracts, Some(("contractNumber", field("contractNumber"))), "pendingTermination", "#m.requestId")
            }
            _ => return Ok(()),
        };
        let mut key = HashMap::from([("partnerNumber".to_owned(), s(field("partnerNumber")))]);
        if let Some((name, value)) = sort {
            key.insert(name.to_owned(), s(value));
        }
        let mut update = self
            .dynamo
            .update_item()
            .table_name(table)
            .set_key(Some(key))
            .condition_expression(format!("{path} = :id"))
            .expression_attribute_names("#m", marker)
            .expression_attribute_values(":id", s(request_id));
        let mut assignments = Vec::new();
        for (i, (field, value)) in restore.unwrap_or_default().into_iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#r{i}"), field)
                .expression_attribute_values(format!(":r{i}"), value);
            assignments.push(format!("#r{i} = :r{i}"));
        }
        let expression = if assignments.is_empty() {
            "REMOVE #m".to_owned()
        } else {
            format!("SET {} REMOVE #m", assignments.join(", "))
        };
        let result = update.update_expression(expression).send().await;
        match result {
            Ok(_) => Ok(()),
            // Another request is pending now, or the entity came again: nothing to clear.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(store_error("UpdateItem", e).into()),
        }
    }

    /// A meter as the CRM has it now. Its registers, unit and removal date replace the
    /// mirror's; its last readings and the portal's concurrency version stay (a reading being
    /// written meanwhile is kept). A new meter, or one moved to another installation, takes
    /// that installation's contract and the contract's end; a register without the CRM's
    /// forecast gets the typical consumption of the contract's product.
    async fn meter(
        &self,
        owner: &CustomerNumber,
        mut meter: portal_domain::entities::Meter,
        version: u64,
    ) -> Result<(), Skip> {
        use portal_domain::entities::{Contract, Installation, Product};
        use portal_domain::export::Owned;
        let partner = || ("partnerNumber".to_owned(), s(owner.as_str()));
        let meter_key = HashMap::from([partner(), ("meterNumber".to_owned(), s(meter.meter_number.as_str()))]);
        let installation_key =
            HashMap::from([partner(), ("installationId".to_owned(), s(meter.installation_id.as_str()))]);
        let (stored, installation) = futures::try_join!(
            crate::dynamo::get::<MeterRecord>(&self.dynamo, &self.tables.meters, meter_key.clone()),
            crate::dynamo::get::<Owned<Installation>>(&self.dynamo, &self.tables.installations, installation_key),
        )?;
        let installation = installation.ok_or_else(|| {
            Skip::Unusable(format!("meter {} of an unknown installation {}", meter.meter_number, meter.installation_id))
        })?;
        let contract_key =
            HashMap::from([partner(), ("contractNumber".to_owned(), s(installation.entity.contract_number.as_str()))]);
        let contract: Option<Owned<Contract>> =
            crate::dynamo::get(&self.dynamo, &self.tables.contracts, contract_key).await?;
        let contract = contract
            .ok_or_else(|| Skip::Unusable(format!("meter {}: its installation has no contract", meter.meter_number)))?
            .entity;
        if meter.registers.iter().any(|r| r.expected_annual_consumption.is_none()) {
            let key = HashMap::from([("productId".to_owned(), s(contract.product_id.as_str()))]);
            let product: Option<Product> = crate::dynamo::get(&self.dynamo, &self.tables.products, key).await?;
            if let Some(product) = product {
                let count = meter.registers.len();
                for register in meter.registers.iter_mut().filter(|r| r.expected_annual_consumption.is_none()) {
                    register.expected_annual_consumption = portal_domain::export::typical_annual_consumption(
                        product.commodity,
                        &product.customer_type,
                        register.code.as_str(),
                        count,
                    );
                }
            }
        }
        let registers = serde_dynamo::to_attribute_value(&meter.registers).map_err(|e| StoreError(e.to_string()))?;
        let commodity = serde_dynamo::to_attribute_value(meter.commodity).map_err(|e| StoreError(e.to_string()))?;
        let date = |d: Option<time::Date>| d.map(|d| s(portal_domain::entities::iso_date::format(d)));
        let mut attributes: Vec<(&str, Option<AttributeValue>)> = vec![
            ("installationId", Some(s(meter.installation_id.as_str()))),
            ("commodity", Some(commodity)),
            ("unit", Some(s(&meter.unit))),
            ("registers", Some(registers)),
            ("contractNumber", Some(s(contract.contract_number.as_str()))),
            ("syncVersion", Some(n(version))),
            ("removedOn", date(meter.removed_on)),
            (crate::dynamo::TOMBSTONE, None),
        ];
        // The contract's end is the contract's (`supplyEndVersion`): taken over only where
        // the meter starts on this installation. A contract's later end still reaches it:
        // that comes only with a newer contract version, which the contract's own
        // conditional put has checked.
        if stored.is_none_or(|m| m.meter.installation_id != meter.installation_id) {
            attributes.push(("contractEndDate", date(contract.end_date)));
            attributes.push(("supplyEndVersion", None));
        }
        // Every attribute by placeholder (`unit` is a reserved word).
        let mut update = self
            .dynamo
            .update_item()
            .table_name(&self.tables.meters)
            .set_key(Some(meter_key))
            .condition_expression(NEWER_ONLY)
            .expression_attribute_values(":v", n(version));
        let (mut set, mut remove) = (Vec::new(), Vec::new());
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            update = update.expression_attribute_names(format!("#a{i}"), name);
            match value {
                Some(value) => {
                    update = update.expression_attribute_values(format!(":a{i}"), value);
                    set.push(format!("#a{i} = :a{i}"));
                }
                None => remove.push(format!("#a{i}")),
            }
        }
        let expression = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
        match update.update_expression(expression).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(Skip::Stale),
            Err(e) => Err(store_error("UpdateItem", e).into()),
        }
    }

    /// A contract's end onto the meters of its installation, unless a newer contract
    /// version set it already (`supplyEndVersion`); meters the mirror does not hold (yet)
    /// are left alone.
    async fn supply_end(
        &self,
        owner: &CustomerNumber,
        installation: &portal_domain::ids::InstallationId,
        end: Option<time::Date>,
        version: u64,
    ) -> Result<(), Skip> {
        let meters: Vec<MeterRecord> =
            crate::dynamo::partition(&self.dynamo, &self.tables.meters, "partnerNumber", owner.as_str()).await?;
        let mut applied = false;
        for meter in meters.iter().filter(|m| &m.meter.installation_id == installation) {
            let update = self
                .dynamo
                .update_item()
                .table_name(&self.tables.meters)
                .key("partnerNumber", s(owner.as_str()))
                .key("meterNumber", s(meter.meter.meter_number.as_str()))
                .condition_expression(
                    "attribute_exists(meterNumber) AND (attribute_not_exists(supplyEndVersion) OR supplyEndVersion < :v)",
                )
                .expression_attribute_values(":v", n(version));
            let update = match end {
                Some(end) => update
                    .update_expression("SET contractEndDate = :end, supplyEndVersion = :v")
                    .expression_attribute_values(":end", s(portal_domain::entities::iso_date::format(end))),
                None => update.update_expression("REMOVE contractEndDate SET supplyEndVersion = :v"),
            };
            match update.send().await {
                Ok(_) => applied = true,
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(store_error("UpdateItem", e).into()),
            }
        }
        if applied { Ok(()) } else { Err(Skip::Stale) }
    }

    /// A reading from the CRM: into the history, and the meter's last reading when it is
    /// newer (conditional on the meter's version, like a portal reading).
    async fn reading(
        &self,
        owner: &CustomerNumber,
        reading: portal_domain::entities::MeterReading,
        version: u64,
    ) -> Result<(), Skip> {
        let key = HashMap::from([
            ("partnerNumber".to_owned(), s(owner.as_str())),
            ("meterNumber".to_owned(), s(reading.meter_number.as_str())),
        ]);
        let mut stored = false;
        for _ in 0..5 {
            let meter: Option<MeterRecord> = crate::dynamo::get(&self.dynamo, &self.tables.meters, key.clone()).await?;
            let meter = meter
                .ok_or_else(|| Skip::Unusable(format!("meterReading of an unknown meter {}", reading.meter_number)))?;
            check_reading_value(&meter.meter, &reading).map_err(|e| Skip::Unusable(Unusable::from(e).0))?;
            if !stored {
                // The same version again (a redelivery after a failure below) is written
                // again, so that the meter's update is not skipped; an older one is stale.
                let mut item = to_item(&reading)?;
                item.insert("partnerNumber".to_owned(), s(owner.as_str()));
                item.insert("readingKey".to_owned(), s(reading_key(&reading)));
                item.insert("syncVersion".to_owned(), n(version));
                let put = self
                    .dynamo
                    .put_item()
                    .table_name(&self.tables.meter_readings)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(syncVersion) OR syncVersion <= :v")
                    .expression_attribute_values(":v", n(version))
                    .send()
                    .await;
                match put {
                    Ok(_) => stored = true,
                    Err(e) if condition_failed(&e) => return Err(Skip::Stale),
                    Err(e) => return Err(store_error("PutItem", e).into()),
                }
            }
            let already = meter.last_reading(&reading.register).is_some_and(|last| {
                last.date > reading.date || (last.date == reading.date && last.value == reading.value)
            });
            if already {
                return Ok(());
            }
            let mut last = meter.last_readings.clone();
            last.retain(|l| l.register != reading.register);
            last.push(LastReading {
                register: reading.register.clone(),
                date: reading.date,
                value: reading.value,
                source: reading.source,
            });
            if self.set_last_readings(&key, &meter, &last).await? {
                return Ok(());
            }
        }
        Err(StoreError("the meter kept changing; retry the message".into()).into())
    }

    /// A reading the CRM deleted leaves the history (unless the stored one is newer); if it
    /// was its register's last reading, the latest reading left in the history becomes the
    /// last (conditional on the meter's version, like a portal reading). This is how the CRM
    /// repairs an implausible reading a customer insisted on.
    async fn delete_reading(
        &self,
        owner: &CustomerNumber,
        meter_number: &portal_domain::ids::MeterNumber,
        register: &portal_domain::ids::RegisterCode,
        date: time::Date,
        version: u64,
    ) -> Result<(), Skip> {
        let reading_key = format!("{meter_number}#{register}#{}", portal_domain::entities::iso_date::format(date));
        let key: Item = HashMap::from([
            ("partnerNumber".to_owned(), s(owner.as_str())),
            ("readingKey".to_owned(), s(&reading_key)),
        ]);
        self.put_tombstone(&self.tables.meter_readings, key, version).await?;
        let key = HashMap::from([
            ("partnerNumber".to_owned(), s(owner.as_str())),
            ("meterNumber".to_owned(), s(meter_number.as_str())),
        ]);
        for _ in 0..5 {
            let Some(meter) = crate::dynamo::get::<MeterRecord>(&self.dynamo, &self.tables.meters, key.clone()).await?
            else {
                return Ok(());
            };
            if meter.last_reading(register).is_none_or(|last| last.date != date) {
                return Ok(());
            }
            // The latest reading of the register left in the history.
            let history = crate::dynamo::reading_history(
                &self.dynamo,
                &self.tables.meter_readings,
                owner.as_str(),
                &format!("{meter_number}#{register}#"),
            )
            .await?;
            let mut last = meter.last_readings.clone();
            last.retain(|l| &l.register != register);
            if let Some(latest) = history.iter().filter(|r| &r.register == register).max_by_key(|r| r.date) {
                last.push(LastReading {
                    register: register.clone(),
                    date: latest.date,
                    value: latest.value,
                    source: latest.source,
                });
            }
            if self.set_last_readings(&key, &meter, &last).await? {
                return Ok(());
            }
        }
        Err(StoreError("the meter kept changing; retry the message".into()).into())
    }

    /// The meter's new last readings, if the meter still has the version the caller read;
    /// `false` when a portal reading won meanwhile (read the meter again).
    async fn set_last_readings(&self, key: &Item, meter: &MeterRecord, last: &[LastReading]) -> Result<bool, Skip> {
        let readings = serde_dynamo::to_attribute_value(last).map_err(|e| StoreError(e.to_string()))?;
        let updated = self
            .dynamo
            .update_item()
            .table_name(&self.tables.meters)
            .set_key(Some(key.clone()))
            .update_expression("SET lastReadings = :r, version = :next")
            .condition_expression("attribute_not_exists(version) OR version = :expected")
            .expression_attribute_values(":r", readings)
            .expression_attribute_values(":expected", n(meter.version))
            .expression_attribute_values(":next", n(meter.version + 1))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem", e).into()),
        }
    }

    /// Moves a message that can never be applied to the dead-letter queue.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        tracing::warn!(reason, "inbound message cannot be applied; moved to the dead-letter queue");
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(|e| store_error("MessageAttributeValue", e))?;
        self.sqs
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(body)
            .message_attributes("reason", attribute)
            .send()
            .await
            .map_err(|e| store_error("SendMessage", e))?;
        Ok(())
    }

    /// Handles a batch: `(message id, body)` pairs; returns the report and the ids of the
    /// messages to deliver again.
    pub async fn handle_batch(&self, messages: &[(String, String)]) -> (SyncReport, Vec<String>) {
        let mut report = SyncReport::default();
        let mut failed = Vec::new();
        // Per entity type: what became of its messages (one metric line each).
        let mut by_type: std::collections::BTreeMap<&'static str, SyncReport> = std::collections::BTreeMap::new();
        for (id, body) in messages {
            let counts = by_type.entry(entity_type(body)).or_default();
            let outcome = match self.apply(body).await {
                Ok(Outcome::Unusable(reason)) => {
                    self.dead_letter(body, &reason).await.map(|()| Outcome::Unusable(reason))
                }
                other => other,
            };
            match outcome {
                Ok(Outcome::Applied) => counts.applied += 1,
                Ok(Outcome::Ignored) => counts.ignored += 1,
                Ok(Outcome::Unusable(_)) => counts.dead_lettered += 1,
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "inbound message not applied; delivered again");
                    counts.failed += 1;
                    failed.push(id.clone());
                }
            }
        }
        use crate::metrics::{Detail, Unit::Count, emit};
        for (entity, counts) in by_type {
            emit(
                &[
                    ("SyncApplied", counts.applied as f64, Count),
                    ("SyncIgnored", counts.ignored as f64, Count),
                    ("SyncDeadLettered", counts.dead_lettered as f64, Count),
                    ("SyncFailed", counts.failed as f64, Count),
                ],
                Some(Detail::EntityType(entity)),
            );
            report.applied += counts.applied;
            report.ignored += counts.ignored;
            report.dead_lettered += counts.dead_lettered;
            report.failed += counts.failed;
        }
        (report, failed)
    }

    /// Locally (no event source mapping): receives and handles everything on the queue,
    /// deleting what was handled.
    pub async fn poll(&self, queue_url: &str) -> Result<SyncReport, StoreError> {
        let mut total = SyncReport::default();
        loop {
            let out = self
                .sqs
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
            let batch: Vec<(String, String)> = received
                .iter()
                .map(|m| (m.message_id.clone().unwrap_or_default(), m.body.clone().unwrap_or_default()))
                .collect();
            let (report, failed) = self.handle_batch(&batch).await;
            for m in &received {
                if failed.contains(&m.message_id.clone().unwrap_or_default()) {
                    continue;
                }
                if let Some(handle) = &m.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| store_error("DeleteMessage", e))?;
                }
            }
            total.applied += report.applied;
            total.ignored += report.ignored;
            total.dead_lettered += report.dead_lettered;
            total.failed += report.failed;
            if report.failed > 0 {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod metric_tests {
    use super::entity_type;

    #[test]
    fn the_entity_type_dimension_comes_from_a_fixed_set() {
        let changed = r#"{"messageType":"crm.entity-changed","entityType":"contract","version":1}"#;
        assert_eq!(entity_type(changed), "contract");
        let status = r#"{"messageType":"crm.request-status-changed","requestId":"x"}"#;
        assert_eq!(entity_type(status), "requestStatus");
        assert_eq!(entity_type(r#"{"messageType":"crm.entity-changed","entityType":"1000001"}"#), "unknown");
        assert_eq!(entity_type("not json"), "unknown");
    }
}
