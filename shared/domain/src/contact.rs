//! Contact-data change (Kommunikationsdatenänderung, capability 4, write side): phone,
//! mobile, fax, e-mail and consent to notifications. The mirror shows the new values at
//! once, marked pending until the CRM confirms; a consent change records when and through
//! which channel it was given.

use crate::clock::Clock;
use crate::entities::timestamp;
use crate::identity::credentials::EmailAddress;
use crate::identity::sessions::Caller;
use crate::ids::{CustomerNumber, IdempotencyKey, RequestId};
use crate::ports::{RequestWriter, StoreError};
use crate::reads::ScopedReads;
use crate::requests::{
    Activity, ActivityOwner, Channel, CustomerRequest, IdempotencyClaim, IdempotencyScope, MirrorUpdate, RequestKind,
    WriteError,
};
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
}

#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("no such customer")]
    NotFound,
    #[error("the request changes nothing")]
    NothingToChange,
    #[error("the idempotency key was used for another request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is in progress")]
    RequestInProgress,
    #[error("the customer changed concurrently")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct ContactService<R, W, C> {
    pub reads: R,
    pub writer: W,
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

impl<R: ScopedReads, W: RequestWriter, C: Clock> ContactService<R, W, C> {
    pub async fn change(
        &self,
        caller: &Caller,
        customer: &CustomerNumber,
        change: ContactChange,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ContactError> {
        let claim = idempotency.map(|(key, fingerprint)| IdempotencyClaim {
            scope: IdempotencyScope::new("contact-change", customer.as_str(), &key),
            fingerprint,
        });
        let earlier = async {
            match &claim {
                Some(c) => self.writer.find_answer(&c.scope).await,
                None => Ok(None),
            }
        };
        let (earlier, partner) = futures::join!(earlier, self.reads.partner(caller, customer));
        let partner = partner?.ok_or(ContactError::NotFound)?;
        if let (Some(answer), Some(claim)) = (earlier?, &claim) {
            return if answer.fingerprint == claim.fingerprint {
                Ok(answer.body)
            } else {
                Err(ContactError::IdempotencyKeyReused)
            };
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
        if set.is_empty() {
            return Err(ContactError::NothingToChange);
        }
        let now = self.clock.now();
        let previous: Map<String, Value> = {
            let current = serde_json::to_value(&partner).map_err(|e| StoreError(e.to_string()))?;
            set.keys().map(|k| (k.clone(), current.get(k).cloned().unwrap_or(Value::Null))).collect()
        };
        let consent = change
            .notification_consent
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
            customer: customer.clone(),
            channel: Channel::Portal,
            submitted_at: now,
            record: details.clone(),
            activities: vec![Activity {
                owner: ActivityOwner::Customer(customer.clone()),
                activity_type: "CONTACT_DATA_CHANGED",
                subject: "Kommunikationsdaten im Kundenportal geändert".into(),
            }],
            mirror_updates: vec![MirrorUpdate::PartnerContact {
                customer: customer.clone(),
                set: set.clone(),
                request_id,
            }],
            payload: json!({ "changes": set, "consent": consent }),
            idempotency: claim.clone(),
            answer: answer.clone(),
        };
        match self.writer.commit(request).await {
            Ok(_) => Ok(answer),
            Err(WriteError::IdempotencyKeyTaken) => {
                let claim = claim.ok_or_else(|| StoreError("idempotency conflict without a key".into()))?;
                match self.writer.find_answer(&claim.scope).await? {
                    Some(stored) if stored.fingerprint == claim.fingerprint => Ok(stored.body),
                    Some(_) => Err(ContactError::IdempotencyKeyReused),
                    None => Err(ContactError::RequestInProgress),
                }
            }
            Err(WriteError::Store(e)) => Err(e.into()),
            Err(_) => Err(ContactError::Conflict),
        }
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
}
