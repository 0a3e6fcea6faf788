//! Billing address and bill recipient of a contract account (capability 5, write side).

use crate::changes::{self, ChangeError, Draft};
use crate::clock::Clock;
use crate::entities::{Address, BillRecipient};
use crate::identity::sessions::Caller;
use crate::ids::{AccountNumber, IdempotencyKey, RequestId};
use crate::ports::RequestWriter;
use crate::reads::ScopedReads;
use crate::requests::{MirrorObject, RequestKind};
use serde_json::{Map, Value, json};

fn tidy(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An address with whitespace tidied and its postal code checked for the country
/// (five digits in Germany, four in Austria and Switzerland).
pub fn checked_address(a: &Address, pointer: &str) -> Result<Address, ChangeError> {
    let address = Address {
        street: tidy(&a.street),
        house_number: tidy(&a.house_number),
        postal_code: tidy(&a.postal_code),
        city: tidy(&a.city),
        country: a.country.trim().to_ascii_uppercase(),
    };
    for (field, value) in [("street", &address.street), ("houseNumber", &address.house_number), ("city", &address.city)]
    {
        if value.is_empty() {
            return Err(ChangeError::invalid(
                &format!("{pointer}/{field}"),
                "ADDRESS_INCOMPLETE",
                "this part of the address is required",
            ));
        }
    }
    let digits = |n: usize| address.postal_code.len() == n && address.postal_code.chars().all(|c| c.is_ascii_digit());
    let valid = match address.country.as_str() {
        "DE" => digits(5),
        "AT" | "CH" => digits(4),
        _ => !address.postal_code.is_empty(),
    };
    if !valid {
        return Err(ChangeError::invalid(
            &format!("{pointer}/postalCode"),
            "POSTAL_CODE_INVALID",
            "the postal code does not fit the country",
        ));
    }
    Ok(address)
}

pub struct BillingService<R, W, C> {
    pub reads: R,
    pub writer: W,
    pub clock: C,
}

impl<R: ScopedReads, W: RequestWriter, C: Clock> BillingService<R, W, C> {
    pub async fn change(
        &self,
        caller: &Caller,
        account: &AccountNumber,
        billing_address: &Address,
        bill_recipient: Option<&BillRecipient>,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ChangeError> {
        let claim = changes::claim("billing-address-change", account.as_str(), idempotency);
        let (earlier, current) =
            futures::join!(changes::stored(&self.writer, &claim), self.reads.account(caller, account));
        let current = current?.ok_or(ChangeError::NotFound)?;
        if let Some(answer) = changes::replay(earlier?, &claim)? {
            return Ok(answer);
        }
        let address = checked_address(billing_address, "/billingAddress")?;
        let recipient = match bill_recipient {
            None => None,
            Some(r) => {
                let name = tidy(&r.name);
                if name.is_empty() {
                    return Err(ChangeError::invalid(
                        "/billRecipient/name",
                        "ADDRESS_INCOMPLETE",
                        "the recipient's name is required",
                    ));
                }
                Some(BillRecipient { name, address: checked_address(&r.address, "/billRecipient/address")? })
            }
        };
        if address == current.billing_address && recipient == current.bill_recipient {
            return Err(ChangeError::invalid("", "NOTHING_TO_CHANGE", "the request changes nothing"));
        }
        let request_id = RequestId::new_random();
        let set = Map::from_iter([
            ("billingAddress".to_owned(), json!(address)),
            ("billRecipient".to_owned(), json!(recipient)),
        ]);
        let request = Draft {
            request_id,
            kind: RequestKind::BillingAddressChange,
            customer: current.partner_number.clone(),
            now: self.clock.now(),
            activity_type: "BILLING_ADDRESS_CHANGED",
            subject: format!("Rechnungsanschrift Vertragskonto {account} im Kundenportal geändert"),
            details: json!({ "accountNumber": account, "billingAddress": address, "billRecipient": recipient }),
            mirror_updates: vec![changes::pending(
                MirrorObject::Account(current.partner_number.clone(), account.clone()),
                "pendingChange",
                current.pending_change,
                json!(request_id),
                set,
            )],
            claim,
            answer: Map::from_iter([("accountNumber".to_owned(), json!(account))]),
        }
        .request();
        changes::commit(&self.writer, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(postal_code: &str, country: &str) -> Address {
        Address {
            street: " Am  Markt ".into(),
            house_number: "1".into(),
            postal_code: postal_code.into(),
            city: "Dresden".into(),
            country: country.into(),
        }
    }

    #[test]
    fn postal_codes_fit_the_country() {
        assert_eq!(checked_address(&address("01067", "de"), "").unwrap().street, "Am Markt");
        assert!(checked_address(&address("1010", "AT"), "").is_ok());
        assert!(matches!(
            checked_address(&address("0106", "DE"), "/b"),
            Err(ChangeError::Invalid { code: "POSTAL_CODE_INVALID", .. })
        ));
    }
}
