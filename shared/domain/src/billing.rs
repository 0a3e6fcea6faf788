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

/// Text with runs of whitespace folded to one space and no space at either end.
pub(crate) fn tidy(s: &str) -> String {
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
                &json!(current),
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

    fn refusal(r: Result<Address, ChangeError>) -> (&'static str, String) {
        match r {
            Err(ChangeError::Invalid { code, pointer, .. }) => (code, pointer),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_country_has_its_postal_codes_and_every_part_is_required() {
        assert!(checked_address(&address("8001", "CH"), "").is_ok());
        for (code, country) in [("10100", "AT"), ("80011", "CH"), ("0106a", "DE"), ("010677", "DE"), ("", "GB")] {
            assert_eq!(
                refusal(checked_address(&address(code, country), "/b")),
                ("POSTAL_CODE_INVALID", "/b/postalCode".into()),
                "{code} {country}"
            );
        }
        let gb = checked_address(&address(" SW1A  1AA ", " gb "), "/b").unwrap();
        assert_eq!((gb.postal_code.as_str(), gb.country.as_str(), gb.city.as_str()), ("SW1A 1AA", "GB", "Dresden"));
        for (field, pointer) in [("street", "/b/street"), ("houseNumber", "/b/houseNumber"), ("city", "/b/city")] {
            let mut a = address("01067", "DE");
            match field {
                "street" => a.street = "  ".into(),
                "houseNumber" => a.house_number = String::new(),
                _ => a.city = " \t".into(),
            }
            assert_eq!(refusal(checked_address(&a, "/b")), ("ADDRESS_INCOMPLETE", pointer.into()));
        }
        let tidy = checked_address(
            &Address { house_number: " 3 a ".into(), city: " Bad  Schandau ".into(), ..address("01814", "DE") },
            "",
        )
        .unwrap();
        assert_eq!((tidy.house_number.as_str(), tidy.city.as_str()), ("3 a", "Bad Schandau"));
    }

    use crate::clock::FixedClock;
    use crate::memory::{MemoryDirectory, MemoryWriter};
    use crate::requests::MirrorUpdate;
    use crate::testkit::{NOW, caller, customer, demo, key, run};

    fn service() -> BillingService<MemoryDirectory, MemoryWriter, FixedClock> {
        BillingService { reads: MemoryDirectory::new(demo()), writer: MemoryWriter::default(), clock: FixedClock(NOW) }
    }

    /// Erika's billing address as typed, a little untidy.
    fn erikas() -> Address {
        Address {
            street: " Heidestraße".into(),
            house_number: "17".into(),
            postal_code: "51147".into(),
            city: "Köln ".into(),
            country: "de".into(),
        }
    }

    fn account() -> AccountNumber {
        AccountNumber::parse("800000001").unwrap()
    }

    fn code(r: Result<Value, ChangeError>) -> (&'static str, String) {
        match r {
            Err(ChangeError::Invalid { code, pointer, .. }) => (code, pointer),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_billing_address_change_needs_a_change() {
        let s = service();
        let c = caller(&["1000001"]);
        assert_eq!(code(run(s.change(&c, &account(), &erikas(), None, None))), ("NOTHING_TO_CHANGE", String::new()));
        let recipient = BillRecipient { name: " Max  Mustermann ".into(), address: address("53111", "DE") };
        run(s.change(&c, &account(), &erikas(), Some(&recipient), None)).unwrap();
        let moved = Address { street: "Rheinufer".into(), ..erikas() };
        let answer = run(s.change(&c, &account(), &moved, None, None)).unwrap();
        let committed = s.writer.committed();
        assert_eq!(committed.len(), 2);
        let (with_recipient, r) = (&committed[0], &committed[1]);
        assert_eq!(with_recipient.record["billRecipient"]["name"], "Max Mustermann");
        assert_eq!(with_recipient.record["billRecipient"]["address"]["street"], "Am Markt");
        assert_eq!(answer["requestId"], json!(r.request_id));
        assert_eq!(answer["accountNumber"], "800000001");
        assert_eq!(r.kind, RequestKind::BillingAddressChange);
        assert_eq!(r.activities[0].subject, "Rechnungsanschrift Vertragskonto 800000001 im Kundenportal geändert");
        assert_eq!(r.record["billingAddress"]["street"], "Rheinufer");
        assert_eq!(r.record["billRecipient"], Value::Null);
        let [MirrorUpdate::Pending { object, set, expect, .. }] = r.mirror_updates.as_slice() else { panic!() };
        assert_eq!(*object, MirrorObject::Account(customer("1000001"), account()));
        assert_eq!((set["billingAddress"]["city"].as_str(), set["billRecipient"].clone()), (Some("Köln"), Value::Null));
        assert_eq!(set["pendingChange"], json!(r.request_id));
        assert_eq!(expect["pendingChange"], Value::Null);
    }

    #[test]
    fn the_recipient_needs_a_name_and_an_address_and_the_account_its_owner() {
        let s = service();
        let c = caller(&["1000001"]);
        let nameless = BillRecipient { name: "  ".into(), address: address("53111", "DE") };
        assert_eq!(
            code(run(s.change(&c, &account(), &erikas(), Some(&nameless), None))),
            ("ADDRESS_INCOMPLETE", "/billRecipient/name".into())
        );
        let bad = BillRecipient { name: "Max".into(), address: address("5311", "DE") };
        assert_eq!(
            code(run(s.change(&c, &account(), &erikas(), Some(&bad), None))),
            ("POSTAL_CODE_INVALID", "/billRecipient/address/postalCode".into())
        );
        assert_eq!(
            code(run(s.change(&c, &account(), &address("5", "DE"), None, None))),
            ("POSTAL_CODE_INVALID", "/billingAddress/postalCode".into())
        );
        let r = run(s.change(&caller(&["1000002"]), &account(), &erikas(), None, None));
        assert!(matches!(r, Err(ChangeError::NotFound)), "{r:?}");
        let moved = Address { street: "Rheinufer".into(), ..erikas() };
        let first = run(s.change(&c, &account(), &moved, None, key("k", "fp"))).unwrap();
        assert_eq!(run(s.change(&c, &account(), &moved, None, key("k", "fp"))).unwrap(), first);
        assert_eq!(s.writer.committed().len(), 1);
    }
}
