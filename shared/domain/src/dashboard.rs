//! Capability 3: the dashboard — the login's business partners with their contract
//! accounts, contracts and meters, for the portal's drop-downs when a customer has
//! several. One round of concurrent reads: four per customer number.

use crate::entities::PartnerType;
use crate::identity::sessions::Caller;
use crate::ids::CustomerNumber;
use crate::meter_reading::{MeterView, meter_view};
use crate::ports::{CustomerDirectory, StoreError};
use futures::future::try_join_all;
use serde::Serialize;
use time::Date;

/// A contract with its meters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractView {
    #[serde(flatten)]
    pub contract: crate::reads::ContractView,
    pub meters: Vec<MeterView>,
}

/// A contract account with its contracts and their meters.
pub type AccountView = crate::reads::AccountContractsView<ContractView>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerView {
    pub customer_number: CustomerNumber,
    pub partner_type: PartnerType,
    pub salutation: Option<String>,
    pub title: Option<String>,
    pub first_name: Option<String>,
    pub last_name: String,
    pub contract_accounts: Vec<AccountView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardView {
    pub partners: Vec<PartnerView>,
}

async fn partner_view(
    directory: &impl CustomerDirectory,
    customer: &CustomerNumber,
    today: Date,
) -> Result<Option<PartnerView>, StoreError> {
    let (partner, accounts, contracts, meters) = futures::try_join!(
        directory.partner(customer),
        directory.contract_accounts(customer),
        directory.contracts(customer),
        directory.meters(customer),
    )?;
    let Some(partner) = partner else { return Ok(None) };
    let contract_accounts = accounts
        .into_iter()
        .map(|a| {
            let of_account = contracts
                .iter()
                .map(|c| &c.entity)
                .filter(|c| c.account_number == a.account_number)
                .map(|c| ContractView {
                    meters: meters
                        .iter()
                        .filter(|m| m.meter.installation_id == c.installation_id && m.is_active_on(today))
                        .map(meter_view)
                        .collect(),
                    contract: c.clone().into(),
                })
                .collect();
            AccountView::new(a, of_account)
        })
        .collect();
    Ok(Some(PartnerView {
        customer_number: partner.partner_number,
        partner_type: partner.partner_type,
        salutation: partner.salutation,
        title: partner.title,
        first_name: partner.first_name,
        last_name: partner.last_name,
        contract_accounts,
    }))
}

/// The caller's dashboard: only the caller's own customer numbers are read. A meter shows
/// while the customer is supplied through it (`today` at the latest: neither its contract
/// has ended nor the meter been removed before).
pub async fn dashboard(
    directory: &impl CustomerDirectory,
    caller: &Caller,
    today: Date,
) -> Result<DashboardView, StoreError> {
    let partners = try_join_all(caller.partner_numbers.iter().map(|c| partner_view(directory, c, today))).await?;
    Ok(DashboardView { partners: partners.into_iter().flatten().collect() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::parse_export;
    use crate::ids::LoginId;
    use crate::memory::MemoryDirectory;

    const TODAY: Date = time::macros::date!(2026 - 12 - 01);

    #[test]
    fn the_dashboard_spans_every_customer_number_of_the_login_and_nothing_else() {
        let directory = MemoryDirectory::new(parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap());
        let caller = Caller {
            login_id: LoginId::parse("L-1").unwrap(),
            partner_numbers: vec![CustomerNumber::parse("1000002").unwrap()],
            must_change_password: false,
            token_hash: String::new(),
            signed_in_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let view = futures::executor::block_on(dashboard(&directory, &caller, TODAY)).unwrap();
        assert_eq!(view.partners.len(), 1);
        let accounts = &view.partners[0].contract_accounts;
        assert_eq!(accounts.len(), 2, "Jürgen has an electricity and a gas account");
        let meters: Vec<&str> = accounts
            .iter()
            .flat_map(|a| &a.contracts)
            .flat_map(|c| &c.meters)
            .map(|m| m.meter_number.as_str())
            .collect();
        assert_eq!(meters.len(), 2);
        assert!(meters.contains(&"7ELS8135012345"));
        assert!(!meters.contains(&"1EMH0012345678"), "another customer's meter");
        // Each contract under its account, each meter under its contract.
        type Contracts<'a> = Vec<(&'a str, Vec<&'a str>)>;
        let tree: Vec<(&str, Contracts)> = accounts
            .iter()
            .map(|a| {
                let contracts = a
                    .contracts
                    .iter()
                    .map(|c| {
                        (
                            c.contract.contract_number.as_str(),
                            c.meters.iter().map(|m| m.meter_number.as_str()).collect(),
                        )
                    })
                    .collect();
                (a.account_number.as_str(), contracts)
            })
            .collect();
        assert_eq!(
            tree,
            [
                ("800000002", vec![("5000002", vec!["1ESY1160012345"])]),
                ("800000003", vec![("5000003", vec!["7ELS8135012345"])]),
            ]
        );
        let p = &view.partners[0];
        assert_eq!(
            (p.customer_number.as_str(), p.last_name.as_str(), p.first_name.as_deref()),
            ("1000002", "Müller-Lüdenscheidt", Some("Jürgen"))
        );
        // A meter the CRM removed (an exchange) leaves the dashboard after its last day.
        let mut snapshot = parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        let gas = snapshot.meters.iter_mut().find(|m| m.meter.meter_number.as_str() == "7ELS8135012345").unwrap();
        gas.meter.removed_on = Some(TODAY);
        let exchanged = MemoryDirectory::new(snapshot);
        let shown = |today| {
            let view = futures::executor::block_on(dashboard(&exchanged, &caller, today)).unwrap();
            view.partners[0].contract_accounts[1].contracts[0].meters.len()
        };
        assert_eq!((shown(TODAY), shown(TODAY + time::Duration::days(1))), (1, 0));
        // A customer number without a partner in the mirror shows nothing.
        let ghost = Caller { partner_numbers: vec![CustomerNumber::parse("1999999").unwrap()], ..caller.clone() };
        assert!(futures::executor::block_on(dashboard(&directory, &ghost, TODAY)).unwrap().partners.is_empty());
    }
}
