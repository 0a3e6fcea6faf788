//! Contact-data change (Kommunikationsdatenänderung, capability 4, write side): phone,
//! mobile, fax, e-mail and consent to notifications. The mirror shows the new values at
//! once, marked pending until the CRM confirms; a consent change records when and through
//! which channel it was given.

use crate::changes::{self, ChangeError, Confirmation};
use crate::clock::Clock;
use crate::entities::timestamp;
use crate::identity::credentials::EmailAddress;
use crate::identity::sessions::Caller;
use crate::identity::{LoginStore, LoginThrottle, Mailer};
use crate::ids::{CustomerNumber, IdempotencyKey, RequestId};
use crate::ports::{RequestWriter, StoreError};
use crate::reads::ScopedReads;
use crate::requests::{Activity, ActivityOwner, Channel, CustomerRequest, MirrorObject, MirrorUpdate, RequestKind};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// A phone, mobile or fax number: digits with `+`, spaces, `-`, `/` or brackets, 6 to 15
/// digits (E.164's maximum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let digits = text.chars().filter(char::is_ascii_digit).count();
        let allowed = text.chars().all(|c| c.is_ascii_digit() || " +-/()".contains(c));
        let plus_first = text.chars().skip(1).all(|c| c != '+');
        if allowed && plus_first && (6..=15).contains(&digits) {
            Ok(Self(text))
        } else {
            Err("a phone number has 6 to 15 digits and may use +, spaces, -, / and brackets")
        }
    }
}

/// What a request does to one field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Set(T),
    Clear,
}

#[derive(Debug, Clone, Default)]
pub struct ContactChange {
    pub phone: Change<PhoneNumber>,
    pub mobile: Change<PhoneNumber>,
    pub fax: Change<PhoneNumber>,
    pub email: Option<EmailAddress>,
    pub notification_consent: Option<bool>,
    /// Confirms a new e-mail address (where notices of sensitive changes go).
    pub current_password: Option<SecretString>,
}

pub struct ContactService<R, W, G, H, M, C> {
    pub reads: R,
    pub writer: W,
    /// A new e-mail address is confirmed like a sensitive change, and told to the login's
    /// address and to the address it replaces.
    pub confirmation: Confirmation<G, H, C>,
    pub mailer: M,
    pub clock: C,
}

fn field<T: Serialize>(set: &mut Map<String, Value>, name: &str, change: &Change<T>) {
    match change {
        Change::Keep => {}
        Change::Set(v) => {
            set.insert(name.to_owned(), json!(v));
        }
        Change::Clear => {
            set.insert(name.to_owned(), Value::Null);
        }
    }
}

impl<R, W, G, H, M, C> ContactService<R, W, G, H, M, C>
where
    R: ScopedReads,
    W: RequestWriter,
    G: LoginStore,
    H: LoginThrottle,
    M: Mailer,
    C: Clock,
{
    pub async fn change(
        &self,
        caller: &Caller,
        customer: &CustomerNumber,
        change: ContactChange,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ChangeError> {
        // A new e-mail address is confirmed like a sensitive change (the current password,
        // or a login of the last few minutes).
        if change.email.is_some() {
            self.confirmation.confirm(caller, change.current_password.as_ref()).await?;
        }
        let claim = changes::claim("contact-change", customer.as_str(), idempotency);
        let (earlier, partner) =
            futures::join!(changes::stored(&self.writer, &claim), self.reads.partner(caller, customer));
        let partner = partner?.ok_or(ChangeError::NotFound)?;
        if let Some(answer) = changes::replay(earlier?, &claim)? {
            return Ok(answer);
        }

        let mut set = Map::new();
        field(&mut set, "phone", &change.phone);
        field(&mut set, "mobile", &change.mobile);
        field(&mut set, "fax", &change.fax);
        if let Some(email) = &change.email {
            set.insert("email".into(), json!(email.as_str()));
        }
        if let Some(consent) = change.notification_consent {
            set.insert("notificationConsent".into(), json!(consent));
        }
        // Values equal to the current ones are no change.
        let current = serde_json::to_value(&partner).map_err(|e| StoreError(e.to_string()))?;
        set.retain(|k, v| current.get(k).unwrap_or(&Value::Null) != v);
        if set.is_empty() {
            return Err(ChangeError::invalid("", "NOTHING_TO_CHANGE", "the request changes nothing"));
        }
        let now = self.clock.now();
        let previous = changes::previous_values(&current, &set);
        let consent = change
            .notification_consent
            .filter(|_| set.contains_key("notificationConsent"))
            .map(|given| json!({ "given": given, "changedAt": timestamp::format(now), "channel": "PORTAL" }));
        let request_id = RequestId::new_random();
        let fields: Vec<&String> = set.keys().collect();
        let answer = json!({
            "requestId": request_id,
            "status": "RECEIVED",
            "customerNumber": customer,
            "pendingFields": fields,
        });
        let details = json!({ "changes": set, "previous": previous, "consent": consent });
        let request = CustomerRequest {
            request_id,
            kind: RequestKind::ContactDataChange,
            customer: Some(customer.clone()),
            channel: Channel::Portal,
            submitted_at: now,
            record: details.clone(),
            activities: vec![Activity {
                owner: ActivityOwner::Customer(customer.clone()),
                activity_type: "CONTACT_DATA_CHANGED",
                subject: "Kommunikationsdaten im Kundenportal geändert".into(),
                text: None,
                route_to: None,
            }],
            mirror_updates: vec![MirrorUpdate::Pending {
                object: MirrorObject::Partner(customer.clone()),
                set: {
                    let mut marked = set.clone();
                    marked.insert("pendingContactChange".into(), json!(request_id));
                    marked
                },
                // A change that committed meanwhile moved the marker: this one loses (409).
                expect: Map::from_iter([(
                    "pendingContactChange".to_owned(),
                    partner.pending_contact_change.map_or(Value::Null, |r| json!(r)),
                )]),
                // What the view falls back to when the CRM rejects the change.
                previous: previous.clone(),
            }],
            payload: json!({ "changes": set, "consent": consent }),
            idempotency: claim,
            answer,
        };
        let email_changed = set.contains_key("email");
        let answer = changes::commit(&self.writer, request).await?;
        if email_changed {
            let to = self.confirmation.notice_addresses(caller, partner.email.clone()).await;
            let text = format!(
                "Guten Tag,\n\ndie E-Mail-Adresse zu Ihrer Kundennummer {customer} wurde soeben im Kundenportal \
                 geändert. Diese Nachricht geht an die bisherige Adresse und an die Ihres Portalzugangs.\n\n\
                 Wenn Sie das nicht selbst waren, ändern Sie bitte sofort Ihr Passwort und rufen Sie uns an.\n"
            );
            changes::notify(&self.mailer, &to, "Ihre E-Mail-Adresse wurde geändert", text).await;
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        assert!(PhoneNumber::parse("+49 221 4711").is_ok());
        assert!(PhoneNumber::parse("0221 / 47 11-0").is_ok());
        assert_eq!(PhoneNumber::parse("  +49   171 1234567 ").unwrap(), PhoneNumber("+49 171 1234567".into()));
        for bad in ["12345", "+49 221 4711 +1", "0221-4711 ext 2", "+49 1234567890123456"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_phone_number_has_6_to_15_digits_and_a_plus_only_in_front() {
        assert!(PhoneNumber::parse("123456").is_ok());
        assert!(PhoneNumber::parse("123 456 789 012 345").is_ok());
        assert!(PhoneNumber::parse("1234567890123456").is_err());
        assert!(PhoneNumber::parse("(0221) 47-11").is_ok());
        assert!(PhoneNumber::parse("0221+4711").is_err());
        assert!(PhoneNumber::parse("0221.4711").is_err());
    }

    use crate::clock::FixedClock;
    use crate::memory::{MemoryDirectory, MemoryLogins, MemoryMailer, MemoryThrottle, MemoryWriter};
    use crate::testkit::{NOW, PASSWORD, caller, confirmation, customer, demo, key, run};

    type Service =
        ContactService<MemoryDirectory, MemoryWriter, MemoryLogins, MemoryThrottle, MemoryMailer, FixedClock>;

    fn service() -> Service {
        ContactService {
            reads: MemoryDirectory::new(demo()),
            writer: MemoryWriter::default(),
            confirmation: confirmation(&["1000001"]),
            mailer: MemoryMailer::default(),
            clock: FixedClock(NOW),
        }
    }

    fn password() -> Option<SecretString> {
        Some(SecretString::from(PASSWORD))
    }

    fn phone(s: &str) -> Change<PhoneNumber> {
        Change::Set(PhoneNumber::parse(s).unwrap())
    }

    #[test]
    fn only_the_fields_that_change_are_recorded_with_their_previous_values() {
        let s = service();
        let c = caller(&["1000001"]);
        let change = ContactChange {
            phone: phone("+49 221 4711"),
            mobile: phone("+49 171 7654321"),
            fax: Change::Clear,
            email: Some(EmailAddress::parse("erika.mustermann@example.org").unwrap()),
            notification_consent: Some(false),
            current_password: password(),
        };
        let answer = run(s.change(&c, &customer("1000001"), change, None)).unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(answer["pendingFields"], json!(["mobile", "notificationConsent"]));
        assert_eq!(
            (answer["requestId"].clone(), answer["customerNumber"].clone()),
            (json!(r.request_id), json!("1000001"))
        );
        assert_eq!(r.record["changes"], json!({"mobile": "+49 171 7654321", "notificationConsent": false}));
        assert_eq!(r.record["previous"], json!({"mobile": "+49 171 1234567", "notificationConsent": true}));
        assert_eq!(
            r.record["consent"],
            json!({"given": false, "changedAt": "2026-12-01T09:00:00.000Z", "channel": "PORTAL"})
        );
        assert_eq!(r.payload, json!({"changes": r.record["changes"], "consent": r.record["consent"]}));
        assert_eq!((r.kind, r.activities[0].activity_type), (RequestKind::ContactDataChange, "CONTACT_DATA_CHANGED"));
        let [MirrorUpdate::Pending { object, set, expect, .. }] = r.mirror_updates.as_slice() else { panic!() };
        assert_eq!(*object, MirrorObject::Partner(customer("1000001")));
        assert_eq!(set["pendingContactChange"], json!(r.request_id));
        assert_eq!(set["mobile"], "+49 171 7654321");
        assert_eq!(expect["pendingContactChange"], Value::Null);
    }

    #[test]
    fn clearing_a_set_field_and_setting_an_empty_one_are_changes() {
        let s = service();
        let c = caller(&["1000001"]);
        let change = ContactChange { phone: Change::Clear, fax: phone("0221 4712"), ..ContactChange::default() };
        run(s.change(&c, &customer("1000001"), change, None)).unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.record["changes"], json!({"phone": null, "fax": "0221 4712"}));
        assert_eq!(r.record["previous"], json!({"phone": "+49 221 4711", "fax": null}));
        assert_eq!(r.record["consent"], Value::Null);
        assert!(s.mailer.sent().is_empty(), "only a new e-mail address is told");
        let email = || ContactChange {
            email: Some(EmailAddress::parse("neu@example.org").unwrap()),
            ..ContactChange::default()
        };
        let r = run(s.change(&c, &customer("1000001"), email(), None));
        assert!(matches!(r, Err(ChangeError::ReauthenticationRequired)), "{r:?}");
        let confirmed = ContactChange { current_password: password(), ..email() };
        run(s.change(&c, &customer("1000001"), confirmed, None)).unwrap();
        assert_eq!(s.writer.committed()[1].record["changes"], json!({"email": "neu@example.org"}));
        // Told to the login's address and to the address it replaces, not to the new one.
        let to: Vec<String> = s.mailer.sent().into_iter().map(|(to, _)| to).collect();
        assert_eq!(to, ["login@example.org", "erika.mustermann@example.org"]);
    }

    #[test]
    fn a_change_to_the_current_values_changes_nothing() {
        let s = service();
        let c = caller(&["1000001"]);
        let same = ContactChange {
            phone: phone("+49 221 4711"),
            fax: Change::Clear,
            notification_consent: Some(true),
            ..ContactChange::default()
        };
        let r = run(s.change(&c, &customer("1000001"), same, None));
        assert!(matches!(r, Err(ChangeError::Invalid { code: "NOTHING_TO_CHANGE", .. })), "{r:?}");
        let r = run(s.change(
            &c,
            &customer("1000002"),
            ContactChange { fax: phone("0351 1234"), ..ContactChange::default() },
            None,
        ));
        assert!(matches!(r, Err(ChangeError::NotFound)), "{r:?}");
        let change = || ContactChange { fax: phone("0221 4712"), ..ContactChange::default() };
        let first = run(s.change(&c, &customer("1000001"), change(), key("k", "fp"))).unwrap();
        assert_eq!(run(s.change(&c, &customer("1000001"), change(), key("k", "fp"))).unwrap(), first);
        assert_eq!(s.writer.committed().len(), 1);
    }
}
