//! Customer data change (Kundendatenänderung, capability 4, write side): salutation, title,
//! first and last name (an organisation: its name) and postal address. Unlike contact
//! data, the CRM checks these before they apply (a new name may need a certificate, a new
//! address moves the customer): the view keeps the CRM's values and shows the requested
//! ones as `pendingDataChange` until the CRM confirms or rejects. One change at a time.

use crate::billing::{checked_address, tidy};
use crate::changes::{self, ChangeError, Draft};
use crate::clock::Clock;
use crate::contact::Change;
use crate::entities::{Address, PartnerType, PendingDataChange};
use crate::identity::sessions::Caller;
use crate::ids::{CustomerNumber, IdempotencyKey, RequestId};
use crate::ports::RequestWriter;
use crate::reads::ScopedReads;
use crate::requests::{MirrorObject, RequestKind};
use serde_json::{Map, Value, json};

/// The salutations of a person (an organisation has none to change).
pub const PERSON_SALUTATIONS: [&str; 3] = ["Frau", "Herr", "Divers"];

/// What the customer asks to change; absent parts stay.
#[derive(Debug, Clone, Default)]
pub struct DataChange {
    pub salutation: Option<String>,
    pub title: Change<String>,
    pub first_name: Option<String>,
    /// A person's last name, or the organisation's name.
    pub last_name: Option<String>,
    pub address: Option<Address>,
}

fn name(value: &str, pointer: &str) -> Result<String, ChangeError> {
    let tidy = tidy(value);
    if tidy.is_empty() {
        return Err(ChangeError::invalid(pointer, "NAME_REQUIRED", "the name cannot be empty"));
    }
    if tidy.chars().any(|c| c.is_ascii_digit()) {
        return Err(ChangeError::invalid(pointer, "NAME_INVALID", "a name has no digits"));
    }
    Ok(tidy)
}

/// The requested values that differ from the current ones (`current`: the business partner
/// as stored), checked, by field name.
pub fn requested_changes(
    partner_type: PartnerType,
    current: &Value,
    change: &DataChange,
) -> Result<Map<String, Value>, ChangeError> {
    let organisation = partner_type == PartnerType::Organization;
    let mut set = Map::new();
    if organisation {
        for (given, field) in [
            (change.salutation.is_some(), "salutation"),
            (change.title != Change::Keep, "title"),
            (change.first_name.is_some(), "firstName"),
        ] {
            if given {
                return Err(ChangeError::invalid(
                    &format!("/{field}"),
                    "NOT_FOR_ORGANISATION",
                    "an organisation changes its name (lastName) and address only",
                ));
            }
        }
    }
    if let Some(salutation) = &change.salutation {
        if !PERSON_SALUTATIONS.contains(&salutation.as_str()) {
            return Err(ChangeError::invalid("/salutation", "SALUTATION_INVALID", "Frau, Herr or Divers"));
        }
        set.insert("salutation".into(), json!(salutation));
    }
    match &change.title {
        Change::Keep => {}
        Change::Clear => {
            set.insert("title".into(), Value::Null);
        }
        Change::Set(title) => {
            let title = tidy(title);
            set.insert("title".into(), if title.is_empty() { Value::Null } else { json!(title) });
        }
    }
    if let Some(first) = &change.first_name {
        set.insert("firstName".into(), json!(name(first, "/firstName")?));
    }
    if let Some(last) = &change.last_name {
        set.insert("lastName".into(), json!(name(last, "/lastName")?));
    }
    if let Some(address) = &change.address {
        set.insert("address".into(), json!(checked_address(address, "/address")?));
    }
    set.retain(|k, v| current.get(k).unwrap_or(&Value::Null) != v);
    if set.is_empty() {
        return Err(ChangeError::invalid("", "NOTHING_TO_CHANGE", "the request changes nothing"));
    }
    Ok(set)
}

pub struct CustomerDataService<R, W, C> {
    pub reads: R,
    pub writer: W,
    pub clock: C,
}

impl<R: ScopedReads, W: RequestWriter, C: Clock> CustomerDataService<R, W, C> {
    pub async fn change(
        &self,
        caller: &Caller,
        customer: &CustomerNumber,
        change: DataChange,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ChangeError> {
        let claim = changes::claim("customer-data-change", customer.as_str(), idempotency);
        let (earlier, partner) =
            futures::join!(changes::stored(&self.writer, &claim), self.reads.partner(caller, customer));
        let partner = partner?.ok_or(ChangeError::NotFound)?;
        if let Some(answer) = changes::replay(earlier?, &claim)? {
            return Ok(answer);
        }
        if let Some(pending) = &partner.pending_data_change {
            return Err(ChangeError::not_possible(
                "DATA_CHANGE_PENDING",
                format!("a change of your data ({}) is already being processed", pending.request_id),
            ));
        }
        let current = serde_json::to_value(&partner).map_err(|e| crate::ports::StoreError(e.to_string()))?;
        let set = requested_changes(partner.partner_type, &current, &change)?;
        let previous = changes::previous_values(&current, &set);
        let request_id = RequestId::new_random();
        let now = self.clock.now();
        let pending = PendingDataChange { request_id, submitted_at: now, changes: set.clone() };
        let fields: Vec<&String> = set.keys().collect();
        let request = Draft {
            request_id,
            kind: RequestKind::CustomerDataChange,
            customer: customer.clone(),
            now,
            activity_type: "CUSTOMER_DATA_CHANGE_REQUESTED",
            subject: format!(
                "Änderung der Kundendaten im Kundenportal beantragt ({})",
                fields.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
            ),
            details: json!({ "changes": set, "previous": previous }),
            mirror_updates: vec![changes::pending(
                MirrorObject::Partner(customer.clone()),
                "pendingDataChange",
                // Refused above when one is pending: a change committed meanwhile wins.
                None,
                json!(pending),
                Map::new(),
                &Value::Null,
            )],
            claim,
            answer: Map::from_iter([("pendingFields".to_owned(), json!(fields))]),
        }
        .request();
        changes::commit(&self.writer, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::entities::BusinessPartner;
    use crate::export::MirrorSnapshot;
    use crate::memory::{MemoryDirectory, MemoryWriter};
    use crate::requests::MirrorUpdate;
    use crate::testkit::{NOW, caller, customer, demo, key, run};

    type Service = CustomerDataService<MemoryDirectory, MemoryWriter, FixedClock>;

    fn service(snapshot: MirrorSnapshot) -> Service {
        CustomerDataService {
            reads: MemoryDirectory::new(snapshot),
            writer: MemoryWriter::default(),
            clock: FixedClock(NOW),
        }
    }

    fn partner(n: &str) -> BusinessPartner {
        demo().partners.into_iter().find(|p| p.partner_number.as_str() == n).unwrap()
    }

    fn refused(r: Result<Value, ChangeError>) -> (&'static str, String) {
        match r {
            Err(ChangeError::Invalid { code, pointer, .. }) => (code, pointer),
            Err(ChangeError::NotPossible { code, .. }) => (code, String::new()),
            other => panic!("{other:?}"),
        }
    }

    fn address(postal_code: &str, street: &str) -> Address {
        Address {
            street: street.into(),
            house_number: " 7 ".into(),
            postal_code: postal_code.into(),
            city: "Köln".into(),
            country: "de".into(),
        }
    }

    #[test]
    fn a_name_and_address_change_is_recorded_and_shown_pending_with_the_crms_values_kept() {
        let s = service(demo());
        let c = caller(&["1000001"]);
        let change = DataChange {
            last_name: Some("  Musterfrau ".into()),
            title: Change::Set("Dr.".into()),
            address: Some(address("50667", "Domplatz")),
            first_name: Some(partner("1000001").first_name.unwrap()),
            ..DataChange::default()
        };
        let answer = run(s.change(&c, &customer("1000001"), change, None)).unwrap();
        assert_eq!(answer["requestType"], "CUSTOMER_DATA_CHANGE");
        // The unchanged first name is no change.
        assert_eq!(answer["pendingFields"], json!(["address", "lastName", "title"]));
        let r = &s.writer.committed()[0];
        assert_eq!(r.kind, RequestKind::CustomerDataChange);
        assert_eq!(r.record["changes"]["lastName"], "Musterfrau");
        assert_eq!(r.record["changes"]["address"]["country"], "DE");
        assert_eq!(r.record["changes"]["address"]["houseNumber"], "7");
        assert_eq!(r.record["previous"]["lastName"], "Mustermann");
        assert_eq!(r.payload, r.record);
        assert_eq!(r.activities.len(), 1);
        assert_eq!(r.activities[0].activity_type, "CUSTOMER_DATA_CHANGE_REQUESTED");
        let [MirrorUpdate::Pending { object, set, expect, .. }] = r.mirror_updates.as_slice() else { panic!() };
        assert_eq!(*object, MirrorObject::Partner(customer("1000001")));
        // Only the marker is set: the names and the address stay the CRM's until it confirms.
        assert_eq!(set.keys().collect::<Vec<_>>(), ["pendingDataChange"]);
        assert_eq!(set["pendingDataChange"]["requestId"], json!(r.request_id));
        assert_eq!(set["pendingDataChange"]["changes"]["lastName"], "Musterfrau");
        assert_eq!(expect["pendingDataChange"], Value::Null);
        // Replayed by its key, once.
        let s = service(demo());
        let change = || DataChange { last_name: Some("Musterfrau".into()), ..DataChange::default() };
        let first = run(s.change(&c, &customer("1000001"), change(), key("k", "fp"))).unwrap();
        assert_eq!(run(s.change(&c, &customer("1000001"), change(), key("k", "fp"))).unwrap(), first);
        assert_eq!(s.writer.committed().len(), 1);
    }

    #[test]
    fn each_field_is_checked_and_one_change_waits_at_a_time() {
        let c = caller(&["1000001"]);
        let try_change = |change: DataChange| run(service(demo()).change(&c, &customer("1000001"), change, None));
        let cases: Vec<(DataChange, (&str, &str))> = vec![
            (DataChange::default(), ("NOTHING_TO_CHANGE", "")),
            (DataChange { last_name: Some("Mustermann".into()), ..DataChange::default() }, ("NOTHING_TO_CHANGE", "")),
            (DataChange { last_name: Some("   ".into()), ..DataChange::default() }, ("NAME_REQUIRED", "/lastName")),
            (DataChange { first_name: Some("Er1ka".into()), ..DataChange::default() }, ("NAME_INVALID", "/firstName")),
            (
                DataChange { salutation: Some("Firma".into()), ..DataChange::default() },
                ("SALUTATION_INVALID", "/salutation"),
            ),
            (
                DataChange { address: Some(address("5066", "Domplatz")), ..DataChange::default() },
                ("POSTAL_CODE_INVALID", "/address/postalCode"),
            ),
            (
                DataChange { address: Some(address("50667", " ")), ..DataChange::default() },
                ("ADDRESS_INCOMPLETE", "/address/street"),
            ),
        ];
        for (change, (code, pointer)) in cases {
            assert_eq!(refused(try_change(change.clone())), (code, pointer.to_owned()), "{change:?}");
        }
        // An organisation changes its name and address, nothing a person has.
        let bakery = caller(&["1000003"]);
        assert_eq!(partner("1000003").partner_type, PartnerType::Organization);
        let s = service(demo());
        let r = run(s.change(
            &bakery,
            &customer("1000003"),
            DataChange { first_name: Some("Hans".into()), ..DataChange::default() },
            None,
        ));
        assert_eq!(refused(r), ("NOT_FOR_ORGANISATION", "/firstName".into()));
        let renamed = DataChange { last_name: Some("Bäckerei Korn & Söhne GmbH".into()), ..DataChange::default() };
        run(s.change(&bakery, &customer("1000003"), renamed, None)).unwrap();
        // Another customer's number: not found.
        let r = run(s.change(&bakery, &customer("1000001"), DataChange::default(), None));
        assert!(matches!(r, Err(ChangeError::NotFound)), "{r:?}");

        let mut snapshot = demo();
        let erika = snapshot.partners.iter_mut().find(|p| p.partner_number.as_str() == "1000001").unwrap();
        erika.pending_data_change =
            Some(PendingDataChange { request_id: RequestId::new_random(), submitted_at: NOW, changes: Map::new() });
        let r = run(service(snapshot).change(
            &c,
            &customer("1000001"),
            DataChange { last_name: Some("Neu".into()), ..DataChange::default() },
            None,
        ));
        assert_eq!(refused(r).0, "DATA_CHANGE_PENDING");
    }
}
