//! Customer requests as the write path carries them: the transaction record for third
//! systems, the activities in the CRM's contact log, the downstream message and the
//! answer given to the client, all decided by the rules before anything is written.

use crate::entities::{LastReading, LoginStatus};
use crate::ids::{
    AccountNumber, ContractNumber, CustomerNumber, IdempotencyKey, InstallationId, LoginId, MeterNumber, RequestId,
};
use crate::logins::{LoginRecord, TokenPurpose};
use crate::ports::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The request types, each with its own transaction table and event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestKind {
    /// Zählerstandsmeldung.
    MeterReadingSubmission,
    /// A new portal login (Portal-Login).
    PortalRegistration,
    /// A login deleted by its customer (status GELÖSCHT).
    AccountDeletion,
    /// A further customer number added to a login.
    CustomerNumberAdded,
    /// Kommunikationsdatenänderung.
    ContactDataChange,
    /// Kundendatenänderung: salutation, title, names, postal address.
    CustomerDataChange,
    /// Bankverbindung ändern: payment method, payment account, payout account.
    BankDetailsChange,
    /// Revocation of the SEPA direct-debit mandate.
    MandateRevocation,
    /// Change of billing address and bill recipient of a contract account.
    BillingAddressChange,
    /// Abschlagsänderung.
    InstallmentChange,
    /// Kündigung.
    ContractTermination,
    /// A message through the contact form.
    Message,
    /// A document the customer uploaded.
    DocumentUpload,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MeterReadingSubmission => "METER_READING_SUBMISSION",
            Self::PortalRegistration => "PORTAL_REGISTRATION",
            Self::AccountDeletion => "ACCOUNT_DELETION",
            Self::CustomerNumberAdded => "CUSTOMER_NUMBER_ADDED",
            Self::ContactDataChange => "CONTACT_DATA_CHANGE",
            Self::CustomerDataChange => "CUSTOMER_DATA_CHANGE",
            Self::BankDetailsChange => "BANK_DETAILS_CHANGE",
            Self::MandateRevocation => "MANDATE_REVOCATION",
            Self::BillingAddressChange => "BILLING_ADDRESS_CHANGE",
            Self::InstallmentChange => "INSTALLMENT_CHANGE",
            Self::ContractTermination => "CONTRACT_TERMINATION",
            Self::Message => "MESSAGE",
            Self::DocumentUpload => "DOCUMENT_UPLOAD",
        }
    }

    /// Event type of the downstream message (`schemas/events/`).
    pub fn event_type(self) -> &'static str {
        match self {
            Self::MeterReadingSubmission => "meter-reading.submitted",
            Self::PortalRegistration => "portal-login.registered",
            Self::AccountDeletion => "portal-login.deleted",
            Self::CustomerNumberAdded => "portal-login.customer-number-added",
            Self::ContactDataChange => "customer.contact-data-changed",
            Self::CustomerDataChange => "customer.data-change-requested",
            Self::BankDetailsChange => "bank-details.changed",
            Self::MandateRevocation => "direct-debit-mandate.revoked",
            Self::BillingAddressChange => "contract-account.billing-address-changed",
            Self::InstallmentChange => "installment-plan.change-requested",
            Self::ContractTermination => "contract.termination-requested",
            Self::Message => "message.received",
            Self::DocumentUpload => "document.uploaded",
        }
    }
}

/// How the customer reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    PortalAnonymous,
    Portal,
}

/// Where an activity is filed in the CRM's contact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityOwner {
    Customer(CustomerNumber),
    Installation(InstallationId),
    /// No customer (an anonymous message): filed under the request, for the CRM to assign.
    Unassigned(RequestId),
}

impl ActivityOwner {
    pub fn key(&self) -> String {
        match self {
            Self::Customer(c) => format!("BP#{c}"),
            Self::Installation(i) => format!("INST#{i}"),
            Self::Unassigned(r) => format!("UNASSIGNED#{r}"),
        }
    }
}

/// Activity (Aktivität) in the CRM's contact log.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub owner: ActivityOwner,
    pub activity_type: &'static str,
    pub subject: String,
    /// The activity's text (a message's text); `None` where the subject says it all.
    pub text: Option<String>,
    /// Whom the CRM delegates the activity to; `None`: not delegated (the default).
    pub route_to: Option<Route>,
}

/// A delegation target of an activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "target", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Route {
    /// The customer's account manager (Kundenbetreuer).
    AccountManager(String),
    /// A department (by the message reason's routing).
    Department(String),
}

/// Whether and how a message's activity is delegated (template parameter
/// `MessageDelegation`). The module description: "Im Standard erfolgt keine Delegation";
/// a deployment may delegate to the account manager, by message reason to a department, or
/// try both in a set order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delegation {
    #[default]
    None,
    AccountManager,
    Department,
    AccountManagerThenDepartment,
    DepartmentThenAccountManager,
}

impl Delegation {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "NONE" => Self::None,
            "ACCOUNT_MANAGER" => Self::AccountManager,
            "DEPARTMENT" => Self::Department,
            "ACCOUNT_MANAGER_THEN_DEPARTMENT" => Self::AccountManagerThenDepartment,
            "DEPARTMENT_THEN_ACCOUNT_MANAGER" => Self::DepartmentThenAccountManager,
            _ => return None,
        })
    }

    /// The target for a customer's account manager (if any) and the department of the
    /// message's reason (if it routes to one).
    pub fn route(self, account_manager: Option<&str>, department: Option<&str>) -> Option<Route> {
        let manager = || account_manager.map(|m| Route::AccountManager(m.to_owned()));
        let department = || department.map(|d| Route::Department(d.to_owned()));
        match self {
            Self::None => None,
            Self::AccountManager => manager(),
            Self::Department => department(),
            Self::AccountManagerThenDepartment => manager().or_else(department),
            Self::DepartmentThenAccountManager => department().or_else(manager),
        }
    }
}

impl Activity {
    /// The activity as the downstream message carries it, for the CRM to create as it is:
    /// type, subject, text, the object it hangs on and the delegation.
    pub fn message(&self) -> Value {
        let (kind, id) = match &self.owner {
            ActivityOwner::Customer(c) => ("BUSINESS_PARTNER", c.to_string()),
            ActivityOwner::Installation(i) => ("INSTALLATION", i.to_string()),
            ActivityOwner::Unassigned(r) => ("UNASSIGNED", r.to_string()),
        };
        serde_json::json!({
            "type": self.activity_type,
            "subject": self.subject,
            "text": self.text,
            "object": { "kind": kind, "id": id },
            "routeTo": self.route_to,
        })
    }
}

/// The scope of an `Idempotency-Key`: the same key from another caller or for another
/// operation is another key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope(String);

impl IdempotencyScope {
    pub fn new(operation: &str, subject: &str, key: &IdempotencyKey) -> Self {
        Self(format!("{operation}#{subject}#{}", key.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An idempotency key claimed by a request, with the fingerprint of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    pub fingerprint: String,
}

/// SHA-256 of the canonical JSON of a request body (keys sorted, no whitespace).
pub fn fingerprint(body: &Value) -> String {
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

/// The fingerprint of a body without its `currentPassword`: a retry that confirms
/// differently is the same request, and nothing derived from a password is kept.
pub fn fingerprint_unconfirmed(body: &Value) -> String {
    let mut body = body.clone();
    if let Some(fields) = body.as_object_mut() {
        fields.remove("currentPassword");
    }
    fingerprint(&body)
}

/// The answer given to the first request under a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAnswer {
    pub request_id: RequestId,
    pub fingerprint: String,
    pub body: Value,
}

/// The downstream message's envelope (`schemas/events/envelope.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    pub event_type: &'static str,
    pub event_version: u32,
    pub request_id: RequestId,
    /// `null` for a message without a customer.
    pub customer_number: Option<CustomerNumber>,
    pub channel: Channel,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub payload: Value,
    /// The activities the request created, for the CRM to create as they are.
    pub activities: Vec<Value>,
}

/// A change of the mirror that commits together with the request.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorUpdate {
    /// New last readings of a meter, if the meter still has `expected_version`.
    MeterLastReadings {
        customer: CustomerNumber,
        meter: MeterNumber,
        last_readings: Vec<LastReading>,
        expected_version: u64,
    },
    /// A new portal login; its id must be new.
    CreateLogin(Box<LoginRecord>),
    /// A uniqueness claim (`USERNAME#…`, `PARTNER#…`) for a login; refused if held.
    Claim {
        key: String,
        login_id: LoginId,
    },
    /// Gives up a claim the login holds.
    ReleaseClaim {
        key: String,
        login_id: LoginId,
    },
    /// Uses a single-use token; refused if used, expired or for another purpose.
    ConsumeToken {
        token_hash: String,
        purpose: TokenPurpose,
        now_epoch: i64,
    },
    SetLoginStatus {
        login_id: LoginId,
        status: LoginStatus,
    },
    /// New values of a mirrored object, shown at once; `set` includes the object's
    /// pending marker (the request id). Refused if the object is missing or any field in
    /// `expect` holds another value.
    Pending {
        object: MirrorObject,
        set: serde_json::Map<String, Value>,
        expect: serde_json::Map<String, Value>,
        /// The values the fields of `set` (other than the marker) had before: put back when
        /// the CRM rejects the request, so that the view falls back to the CRM's values.
        previous: serde_json::Map<String, Value>,
    },
    /// A new item of a mirror table (an uploaded document in the inbox); its key must be new.
    Insert {
        table: MirrorTable,
        item: serde_json::Map<String, Value>,
    },
    /// Adds a customer number to a login that does not have it yet.
    AddLoginPartner {
        login_id: LoginId,
        customer: CustomerNumber,
    },
}

/// A mirrored object a change marks as pending, by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorObject {
    Partner(CustomerNumber),
    Account(CustomerNumber, AccountNumber),
    BankDetails(CustomerNumber, AccountNumber),
    InstallmentPlan(CustomerNumber, AccountNumber),
    Contract(CustomerNumber, ContractNumber),
}

/// Mirror tables that take new items from the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorTable {
    Documents,
}

/// Everything one customer request writes, decided before the write.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRequest {
    pub request_id: RequestId,
    pub kind: RequestKind,
    /// The customer the request is for; `None` only for an anonymous message.
    pub customer: Option<CustomerNumber>,
    pub channel: Channel,
    pub submitted_at: OffsetDateTime,
    /// The transaction record's request-specific fields.
    pub record: Value,
    pub activities: Vec<Activity>,
    pub mirror_updates: Vec<MirrorUpdate>,
    pub payload: Value,
    pub idempotency: Option<IdempotencyClaim>,
    pub answer: Value,
}

impl CustomerRequest {
    /// The key that orders the downstream messages: the customer number, or the request
    /// itself for a request without a customer (nothing to keep in order with).
    pub fn order_key(&self) -> String {
        match &self.customer {
            Some(c) => c.to_string(),
            None => format!("UNASSIGNED-{}", self.request_id),
        }
    }

    pub fn envelope(&self) -> EventEnvelope {
        EventEnvelope {
            event_type: self.kind.event_type(),
            event_version: 1,
            request_id: self.request_id,
            customer_number: self.customer.clone(),
            channel: self.channel,
            occurred_at: self.submitted_at,
            payload: self.payload.clone(),
            activities: self.activities.iter().map(Activity::message).collect(),
        }
    }

    pub fn stored_answer(&self) -> Option<StoredAnswer> {
        self.idempotency.as_ref().map(|claim| StoredAnswer {
            request_id: self.request_id,
            fingerprint: claim.fingerprint.clone(),
            body: self.answer.clone(),
        })
    }
}

/// What the write path reports after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitReceipt {
    /// False when the message could not be sent yet; the relay sends it later.
    pub message_sent: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// Another request claimed the same idempotency key first (a concurrent retry).
    #[error("idempotency key already claimed")]
    IdempotencyKeyTaken,
    /// The mirror changed since the rules read it (a concurrent request won).
    #[error("the data changed concurrently")]
    Conflict,
    /// A uniqueness claim is held by another login.
    #[error("claim {0} is taken")]
    ClaimTaken(String),
    /// A single-use token was used, expired, or is for something else.
    #[error("the token cannot be used")]
    TokenNotUsable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A customer's request as `GET /v1/me/requests` lists it: what, when, and what became of
/// it (`SUBMITTED` until the CRM reports `PROCESSED` or `REJECTED`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSummary {
    pub request_id: RequestId,
    pub request_type: String,
    #[serde(rename(deserialize = "partnerNumber", serialize = "customerNumber"))]
    pub customer_number: CustomerNumber,
    pub submitted_at: String,
    pub status: String,
    #[serde(default)]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub status_changed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
}

impl RequestSummary {
    /// The listing order: newest first, ties by request id.
    pub fn position(&self) -> (String, String) {
        (self.submitted_at.clone(), self.request_id.to_string())
    }
}

/// One page of a customer's requests, newest first, and whether more follow.
pub fn page(
    mut all: Vec<RequestSummary>,
    before: Option<&(String, String)>,
    limit: usize,
) -> (Vec<RequestSummary>, bool) {
    all.sort_by_key(|r| std::cmp::Reverse(r.position()));
    all.dedup_by(|a, b| a.request_id == b.request_id);
    let mut rest: Vec<RequestSummary> = all.into_iter().filter(|r| before.is_none_or(|b| &r.position() < b)).collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    (rest, more)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn every_request_kind_has_its_name_and_event_type() {
        let all = [
            (RequestKind::MeterReadingSubmission, "METER_READING_SUBMISSION", "meter-reading.submitted"),
            (RequestKind::PortalRegistration, "PORTAL_REGISTRATION", "portal-login.registered"),
            (RequestKind::AccountDeletion, "ACCOUNT_DELETION", "portal-login.deleted"),
            (RequestKind::CustomerNumberAdded, "CUSTOMER_NUMBER_ADDED", "portal-login.customer-number-added"),
            (RequestKind::ContactDataChange, "CONTACT_DATA_CHANGE", "customer.contact-data-changed"),
            (RequestKind::CustomerDataChange, "CUSTOMER_DATA_CHANGE", "customer.data-change-requested"),
            (RequestKind::BankDetailsChange, "BANK_DETAILS_CHANGE", "bank-details.changed"),
            (RequestKind::MandateRevocation, "MANDATE_REVOCATION", "direct-debit-mandate.revoked"),
            (RequestKind::BillingAddressChange, "BILLING_ADDRESS_CHANGE", "contract-account.billing-address-changed"),
            (RequestKind::InstallmentChange, "INSTALLMENT_CHANGE", "installment-plan.change-requested"),
            (RequestKind::ContractTermination, "CONTRACT_TERMINATION", "contract.termination-requested"),
            (RequestKind::Message, "MESSAGE", "message.received"),
            (RequestKind::DocumentUpload, "DOCUMENT_UPLOAD", "document.uploaded"),
        ];
        for (kind, name, event) in all {
            assert_eq!((kind.as_str(), kind.event_type()), (name, event));
            // The name is the serialised form.
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
        }
    }

    fn request(customer: Option<&str>, claim: Option<IdempotencyClaim>) -> CustomerRequest {
        CustomerRequest {
            request_id: RequestId::parse("b7c1e2d4-0f3a-4e5b-9c6d-7e8f9a0b1c2d").unwrap(),
            kind: RequestKind::Message,
            customer: customer.map(|c| CustomerNumber::parse(c).unwrap()),
            channel: Channel::PortalAnonymous,
            submitted_at: datetime!(2026-12-01 09:00 UTC),
            record: json!({"r": 1}),
            activities: Vec::new(),
            mirror_updates: Vec::new(),
            payload: json!({"p": 1}),
            idempotency: claim,
            answer: json!({"a": 1}),
        }
    }

    #[test]
    fn messages_are_ordered_per_customer_and_carry_the_envelope() {
        assert_eq!(request(Some("1000001"), None).order_key(), "1000001");
        assert_eq!(request(None, None).order_key(), "UNASSIGNED-b7c1e2d4-0f3a-4e5b-9c6d-7e8f9a0b1c2d");
        let envelope = request(Some("1000001"), None).envelope();
        assert_eq!(
            serde_json::to_value(&envelope).unwrap(),
            json!({
                "eventType": "message.received", "eventVersion": 1, "requestId": "b7c1e2d4-0f3a-4e5b-9c6d-7e8f9a0b1c2d",
                "customerNumber": "1000001", "channel": "PORTAL_ANONYMOUS", "occurredAt": "2026-12-01T09:00:00Z",
                "payload": {"p": 1}, "activities": [],
            })
        );
        let owners = [
            ActivityOwner::Customer(CustomerNumber::parse("1000001").unwrap()),
            ActivityOwner::Installation(InstallationId::parse("A-1").unwrap()),
            ActivityOwner::Unassigned(request(None, None).request_id),
        ];
        assert_eq!(
            owners.map(|o| o.key()),
            ["BP#1000001", "INST#A-1", "UNASSIGNED#b7c1e2d4-0f3a-4e5b-9c6d-7e8f9a0b1c2d"].map(String::from)
        );
    }

    #[test]
    fn the_answer_is_stored_only_under_a_key_and_fingerprints_ignore_the_password() {
        assert_eq!(request(None, None).stored_answer(), None);
        let scope = IdempotencyScope::new("op", "s", &IdempotencyKey::parse("k").unwrap());
        assert_eq!(scope.as_str(), "op#s#k");
        let claim = IdempotencyClaim { scope, fingerprint: "fp".into() };
        let stored = request(None, Some(claim)).stored_answer().unwrap();
        assert_eq!(
            (stored.fingerprint.as_str(), stored.body.clone(), stored.request_id),
            ("fp", json!({"a": 1}), request(None, None).request_id)
        );

        let body = json!({"b": 1, "a": [1, 2]});
        assert_eq!(fingerprint(&body), hex::encode(Sha256::digest(br#"{"a":[1,2],"b":1}"#)));
        assert_ne!(fingerprint(&body), fingerprint(&json!({"b": 2, "a": [1, 2]})));
        let confirmed = json!({"b": 1, "a": [1, 2], "currentPassword": "geheim"});
        assert_eq!(fingerprint_unconfirmed(&confirmed), fingerprint(&body));
        assert_eq!(fingerprint_unconfirmed(&json!([1])), fingerprint(&json!([1])));
    }

    fn summary(id: &str, at: &str) -> RequestSummary {
        serde_json::from_value(json!({
            "requestId": id, "requestType": "MESSAGE", "partnerNumber": "1000001", "submittedAt": at, "status": "SUBMITTED",
        }))
        .unwrap()
    }

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";
    const C: &str = "00000000-0000-4000-8000-00000000000c";

    #[test]
    fn pages_are_newest_first_without_duplicates_and_say_whether_more_follow() {
        let all = vec![
            summary(A, "2026-12-01T09:00:00.000Z"),
            summary(C, "2026-12-02T09:00:00.000Z"),
            summary(B, "2026-12-01T09:00:00.000Z"),
            summary(C, "2026-12-02T09:00:00.000Z"),
        ];
        let ids = |page: &[RequestSummary]| page.iter().map(|r| r.request_id.to_string()).collect::<Vec<_>>();
        let (first, more) = page(all.clone(), None, 2);
        assert_eq!((ids(&first), more), (vec![C.to_owned(), B.to_owned()], true));
        let (rest, more) = page(all.clone(), Some(&first[1].position()), 2);
        assert_eq!((ids(&rest), more), (vec![A.to_owned()], false));
        let (exact, more) = page(all.clone(), None, 3);
        assert_eq!((exact.len(), more), (3, false), "exactly the limit: nothing more");
        assert_eq!(first[0].position(), ("2026-12-02T09:00:00.000Z".to_owned(), C.to_owned()));
    }
}
