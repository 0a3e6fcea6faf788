//! DynamoDB adapter of the scoped reads: every lookup is made under the caller's customer
//! numbers (the first part of every customer-owned key), concurrently when a login has
//! several, so that authorization and reading are one round of calls.

use crate::config::Tables;
use crate::dynamo::{Item, from_item, get, partition, s, store_error};
use aws_sdk_dynamodb::Client;
use futures::future::try_join_all;
use portal_domain::documents::object_key;
use portal_domain::entities::{
    BankDetails, BusinessPartner, CodeValue, Contract, ContractAccountRecord, Document, InstallmentPlan, MeterReading,
    MeterRecord, Product,
};
use portal_domain::export::Owned;
use portal_domain::identity::sessions::Caller;
use portal_domain::ids::{AccountNumber, ContractNumber, CustomerNumber, DocumentId, MeterNumber};
use portal_domain::ports::StoreError;
use portal_domain::reads::{Catalog, ScopedReads};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct DynamoReads {
    client: Client,
    tables: Arc<Tables>,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl DynamoReads {
    pub fn new(client: Client, tables: Arc<Tables>, s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { client, tables, s3, bucket }
    }

    /// The items of a table under every one of the caller's customer numbers, concurrently.
    async fn of_every_customer<T: DeserializeOwned>(&self, caller: &Caller, table: &str) -> Result<Vec<T>, StoreError> {
        let per_customer = try_join_all(
            caller.partner_numbers.iter().map(|p| partition::<T>(&self.client, table, "partnerNumber", p.as_str())),
        )
        .await?;
        Ok(per_customer.into_iter().flatten().collect())
    }

    /// The item `(customer, id)` for the first of the caller's customers that has it.
    async fn owned<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        table: &str,
        sort_key: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let found = try_join_all(caller.partner_numbers.iter().map(|p| {
            let key = HashMap::from([("partnerNumber".to_owned(), s(p.as_str())), (sort_key.to_owned(), s(id))]);
            get::<T>(&self.client, table, key)
        }))
        .await?;
        Ok(found.into_iter().flatten().next())
    }

    /// The inbox configuration the CRM sent (`None`: the deployment's fallback applies).
    pub async fn inbox_policy(&self) -> Result<Option<portal_domain::documents::InboxPolicy>, StoreError> {
        use portal_domain::documents::{INBOX_SETTING, SETTINGS_LIST};
        let key = HashMap::from([("listName".to_owned(), s(SETTINGS_LIST)), ("key".to_owned(), s(INBOX_SETTING))]);
        let found = self
            .client
            .get_item()
            .table_name(&self.tables.code_lists)
            .set_key(Some(key))
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(mut item) = found.item.filter(|i| !crate::dynamo::is_tombstone(i)) else { return Ok(None) };
        item.remove("listName");
        item.remove("key");
        from_item(&self.tables.code_lists, item).map(Some)
    }
}

impl ScopedReads for DynamoReads {
    async fn partner(&self, caller: &Caller, customer: &CustomerNumber) -> Result<Option<BusinessPartner>, StoreError> {
        if !caller.owns(customer) {
            return Ok(None);
        }
        let key = HashMap::from([("partnerNumber".to_owned(), s(customer.as_str()))]);
        get(&self.client, &self.tables.business_partners, key).await
    }

    async fn account(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> Result<Option<ContractAccountRecord>, StoreError> {
        self.owned(caller, &self.tables.contract_accounts, "accountNumber", account.as_str()).await
    }

    async fn account_contracts(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> Result<Option<(ContractAccountRecord, Vec<Contract>)>, StoreError> {
        let contracts =
            try_join_all(caller.partner_numbers.iter().map(|p| {
                partition::<Owned<Contract>>(&self.client, &self.tables.contracts, "partnerNumber", p.as_str())
            }));
        let (owned, contracts) = futures::try_join!(self.account(caller, account), contracts)?;
        Ok(owned.map(|record| {
            let of_account = contracts.into_iter().flatten().map(|c| c.entity).filter(|c| &c.account_number == account);
            (record, of_account.collect())
        }))
    }

    async fn contract(&self, caller: &Caller, contract: &ContractNumber) -> Result<Option<Contract>, StoreError> {
        let owned: Option<Owned<Contract>> =
            self.owned(caller, &self.tables.contracts, "contractNumber", contract.as_str()).await?;
        Ok(owned.map(|c| c.entity))
    }

    async fn bank_details(&self, caller: &Caller, account: &AccountNumber) -> Result<Option<BankDetails>, StoreError> {
        self.owned(caller, &self.tables.bank_details, "accountNumber", account.as_str()).await
    }

    async fn installment_plan(
        &self,
        caller: &Caller,
        account: &AccountNumber,
    ) -> Result<Option<Owned<InstallmentPlan>>, StoreError> {
        self.owned(caller, &self.tables.installment_plans, "accountNumber", account.as_str()).await
    }

    async fn documents(&self, caller: &Caller) -> Result<Vec<Document>, StoreError> {
        self.of_every_customer(caller, &self.tables.documents).await
    }

    async fn document_file(
        &self,
        caller: &Caller,
        document: &DocumentId,
    ) -> Result<Option<(Document, Vec<u8>)>, StoreError> {
        let found = self.find_document(caller, document, u64::MAX).await?;
        // No file exceeds u64::MAX bytes: every file found is inline.
        Ok(found.and_then(|(record, file)| match file {
            Download::Inline(bytes) => Some((record, bytes)),
            Download::Link(_) => None,
        }))
    }

    async fn meters(&self, caller: &Caller) -> Result<Vec<MeterRecord>, StoreError> {
        self.of_every_customer(caller, &self.tables.meters).await
    }

    async fn meter_readings(
        &self,
        caller: &Caller,
        meter: &MeterNumber,
    ) -> Result<Option<(MeterRecord, Vec<MeterReading>)>, StoreError> {
        // Meter and history under each of the caller's customer numbers, all at once.
        let found = try_join_all(caller.partner_numbers.iter().map(|p| async move {
            let key = HashMap::from([
                ("partnerNumber".to_owned(), s(p.as_str())),
                ("meterNumber".to_owned(), s(meter.as_str())),
            ]);
            futures::try_join!(get::<MeterRecord>(&self.client, &self.tables.meters, key), self.readings_of(p, meter))
        }))
        .await?;
        Ok(found.into_iter().find_map(|(record, readings)| record.map(|r| (r, readings))))
    }
}

/// A document's file as a download: its bytes, or (above the inline limit) its object key,
/// to be handed out as a presigned URL.
pub enum Download {
    Inline(Vec<u8>),
    Link(String),
}

impl DynamoReads {
    /// A document of the caller and its file: the bytes when the file is at most
    /// `inline_max` bytes, else its key (the body is not read).
    pub async fn document_download(
        &self,
        caller: &Caller,
        document: &DocumentId,
    ) -> Result<Option<(Document, Download)>, StoreError> {
        self.find_document(caller, document, crate::files::INLINE_MAX_BYTES).await
    }

    async fn find_document(
        &self,
        caller: &Caller,
        document: &DocumentId,
        inline_max: u64,
    ) -> Result<Option<(Document, Download)>, StoreError> {
        // Record and file under each of the caller's customer numbers, all at once: the
        // file's key begins with the customer number too.
        let found = try_join_all(caller.partner_numbers.iter().map(|p| async move {
            let key = HashMap::from([
                ("partnerNumber".to_owned(), s(p.as_str())),
                ("documentId".to_owned(), s(document.as_str())),
            ]);
            futures::try_join!(
                get::<Document>(&self.client, &self.tables.documents, key),
                self.file(p, document, inline_max)
            )
        }))
        .await?;
        Ok(found.into_iter().find_map(|(record, file)| record.zip(file)))
    }

    async fn file(
        &self,
        customer: &CustomerNumber,
        document: &DocumentId,
        inline_max: u64,
    ) -> Result<Option<Download>, StoreError> {
        let key = object_key(customer, document);
        let result = self.s3.get_object().bucket(&self.bucket).key(&key).send().await;
        match result {
            Ok(out) if out.content_length().is_some_and(|n| n > 0 && n as u64 > inline_max) => {
                Ok(Some(Download::Link(key)))
            }
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| StoreError(format!("GetObject body: {e}")))?;
                Ok(Some(Download::Inline(bytes.into_bytes().to_vec())))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(store_error("GetObject", e)),
        }
    }

    async fn readings_of(
        &self,
        customer: &CustomerNumber,
        meter: &MeterNumber,
    ) -> Result<Vec<MeterReading>, StoreError> {
        crate::dynamo::reading_history(
            &self.client,
            &self.tables.meter_readings,
            customer.as_str(),
            &format!("{meter}#"),
        )
        .await
    }
}

impl Catalog for DynamoReads {
    async fn products(&self) -> Result<Vec<Product>, StoreError> {
        // The catalogue is a handful of items: one scan, every page.
        let table = &self.tables.products;
        let items: Vec<Item> = self
            .client
            .scan()
            .table_name(table)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error("Scan", e))?;
        let mut products: Vec<Product> = items
            .into_iter()
            .filter(|i| !crate::dynamo::is_tombstone(i))
            .map(|i| from_item(table, i))
            .collect::<Result<_, _>>()?;
        products.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        Ok(products)
    }

    async fn code_list(&self, name: &str) -> Result<Vec<CodeValue>, StoreError> {
        partition(&self.client, &self.tables.code_lists, "listName", name).await
    }
}
