//! DynamoDB adapter of the data export: everything stored under the login and each of its
//! customer numbers, read in two concurrent rounds (the installations' activities need the
//! installations), every page of every partition. The document and what it withholds are
//! the domain's (`portal_domain::data_export`).

use crate::config::Tables;
use crate::dynamo::{get, index_partition, partition, s};
use aws_sdk_dynamodb::Client;
use futures::future::try_join_all;
use portal_domain::data_export::CustomerData;
use portal_domain::identity::sessions::Caller;
use portal_domain::ids::CustomerNumber;
use portal_domain::ports::StoreError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The transaction tables' index by customer and submission time.
const BY_CUSTOMER: &str = "by-customer";

#[derive(Debug, Clone)]
pub struct DynamoExport {
    client: Client,
    tables: Arc<Tables>,
}

impl DynamoExport {
    pub fn new(client: Client, tables: Arc<Tables>) -> Self {
        Self { client, tables }
    }

    /// The login as stored (the domain withholds its secrets).
    pub async fn login(&self, caller: &Caller) -> Result<Value, StoreError> {
        let key = HashMap::from([("loginId".to_owned(), s(caller.login_id.as_str()))]);
        Ok(get::<Value>(&self.client, &self.tables.portal_logins, key).await?.unwrap_or(Value::Null))
    }

    /// Everything stored under each of the caller's customer numbers.
    pub async fn customers(&self, caller: &Caller) -> Result<Vec<CustomerData>, StoreError> {
        try_join_all(caller.partner_numbers.iter().map(|c| self.customer(c))).await
    }

    async fn customer<'a>(&'a self, customer: &'a CustomerNumber) -> Result<CustomerData, StoreError> {
        let c = customer.as_str();
        let t = &self.tables;
        let client = &self.client;
        let of = move |table: &'a str| partition::<Value>(client, table, "partnerNumber", c);
        let partner_key = HashMap::from([("partnerNumber".to_owned(), s(c))]);
        let requests = try_join_all(
            t.record_tables()
                .map(|table| index_partition::<Value>(&self.client, table, Some(BY_CUSTOMER), "partnerNumber", c)),
        );
        let customer_owner = format!("BP#{c}");
        let (
            business_partner,
            (contract_accounts, bank_details, contracts, installations),
            (meters, meter_readings, installment_plans, documents),
            activities,
            requests,
        ) = futures::try_join!(
            get::<Value>(&self.client, &t.business_partners, partner_key),
            async {
                futures::try_join!(
                    of(&t.contract_accounts),
                    of(&t.bank_details),
                    of(&t.contracts),
                    of(&t.installations)
                )
            },
            async {
                futures::try_join!(of(&t.meters), of(&t.meter_readings), of(&t.installment_plans), of(&t.documents))
            },
            partition::<Value>(&self.client, &t.activities, "ownerKey", &customer_owner),
            requests,
        )?;
        let owners: Vec<String> = installations
            .iter()
            .filter_map(|i| i.get("installationId")?.as_str())
            .map(|id| format!("INST#{id}"))
            .collect();
        let installation_activities =
            try_join_all(owners.iter().map(|owner| partition::<Value>(&self.client, &t.activities, "ownerKey", owner)))
                .await?;
        let mut activities = activities;
        activities.extend(installation_activities.into_iter().flatten());
        let mut requests: Vec<Value> = requests.into_iter().flatten().collect();
        requests.sort_by(|a, b| a["submittedAt"].as_str().cmp(&b["submittedAt"].as_str()));
        Ok(CustomerData {
            customer_number: c.to_owned(),
            business_partner,
            contract_accounts,
            bank_details,
            contracts,
            installations,
            meters,
            meter_readings,
            installment_plans,
            documents,
            activities,
            requests,
        })
    }
}
