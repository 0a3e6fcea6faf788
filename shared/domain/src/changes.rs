//! What every self-service change shares: one error type with a documented refusal code
//! per rule, the idempotent commit through the write path, the confirmation sensitive
//! changes ask for (current password, or a login younger than ten minutes), and the
//! notification mail they send.

use crate::clock::Clock;
use crate::entities::timestamp;
use crate::identity::access::{AccessError, LockoutPolicy, throttled};
use crate::identity::credentials::verify_password;
use crate::identity::sessions::Caller;
use crate::identity::{LoginStore, LoginThrottle, Mail, Mailer};
use crate::ids::{CustomerNumber, IdempotencyKey, RequestId};
use crate::plausibility::RuleViolation;
use crate::ports::{RequestWriter, StoreError};
use crate::requests::{
    Activity, ActivityOwner, Channel, CustomerRequest, IdempotencyClaim, IdempotencyScope, MirrorObject, MirrorUpdate,
    RequestKind, StoredAnswer, WriteError,
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

/// Why a change was not made. Every variant has one documented status and code.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Unknown, or not the caller's: one answer for both (404).
    #[error("not found")]
    NotFound,
    /// A rule refused a field's value (422).
    #[error("{message}")]
    Invalid { pointer: String, code: &'static str, message: String },
    /// The change is not possible now (409), e.g. a locked installment plan.
    #[error("{message}")]
    NotPossible { code: &'static str, message: String },
    /// A meter reading broke the plausibility rules (422).
    #[error("the reading is not plausible")]
    Implausible(Vec<RuleViolation>),
    /// A reading inside a larger request broke them; `prefix` points at it (422).
    #[error("the reading at {prefix} is not plausible")]
    ImplausibleAt { prefix: String, violations: Vec<RuleViolation> },
    /// A sensitive change without the current password, long after the login (403).
    #[error("confirm the change with the current password")]
    ReauthenticationRequired,
    #[error("the current password is wrong")]
    CurrentPasswordWrong,
    #[error("too many attempts")]
    TooManyAttempts { retry_after: Duration },
    #[error("the idempotency key was used for another request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is in progress")]
    RequestInProgress,
    /// The object changed while the rules read it.
    #[error("the data changed concurrently")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChangeError {
    pub fn invalid(pointer: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { pointer: pointer.to_owned(), code, message: message.into() }
    }

    pub fn not_possible(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotPossible { code, message: message.into() }
    }
}

/// The client's key and the fingerprint of its body, as a claim scoped to the operation
/// and the object it changes.
pub fn claim(
    operation: &str,
    subject: &str,
    idempotency: Option<(IdempotencyKey, String)>,
) -> Option<IdempotencyClaim> {
    idempotency.map(|(key, fingerprint)| IdempotencyClaim {
        scope: IdempotencyScope::new(operation, subject, &key),
        fingerprint,
    })
}

/// The answer stored under the claim, if any.
pub async fn stored<W: RequestWriter>(
    writer: &W,
    claim: &Option<IdempotencyClaim>,
) -> Result<Option<StoredAnswer>, StoreError> {
    match claim {
        Some(c) => writer.find_answer(&c.scope).await,
        None => Ok(None),
    }
}

/// The earlier answer to replay for a retry with the same body; a refusal for the same key
/// with another body. Call it only after the caller was found entitled to the object.
pub fn replay(stored: Option<StoredAnswer>, claim: &Option<IdempotencyClaim>) -> Result<Option<Value>, ChangeError> {
    match (stored, claim) {
        (Some(answer), Some(claim)) if answer.fingerprint == claim.fingerprint => Ok(Some(answer.body)),
        (Some(_), Some(_)) => Err(ChangeError::IdempotencyKeyReused),
        _ => Ok(None),
    }
}

/// Commits a decided request and returns its answer; when a concurrent request under the
/// same key won, that request's answer (or a refusal if its body differed).
pub async fn commit<W: RequestWriter>(writer: &W, request: CustomerRequest) -> Result<Value, ChangeError> {
    let answer = request.answer.clone();
    let claim = request.idempotency.clone();
    match writer.commit(request).await {
        Ok(_) => Ok(answer),
        Err(WriteError::IdempotencyKeyTaken) => {
            let claim = claim.ok_or_else(|| StoreError("idempotency conflict without a key".into()))?;
            match writer.find_answer(&claim.scope).await? {
                Some(stored) if stored.fingerprint == claim.fingerprint => Ok(stored.body),
                Some(_) => Err(ChangeError::IdempotencyKeyReused),
                None => Err(ChangeError::RequestInProgress),
            }
        }
        Err(WriteError::Store(e)) => Err(e.into()),
        Err(WriteError::Conflict | WriteError::ClaimTaken(_) | WriteError::TokenNotUsable) => {
            Err(ChangeError::Conflict)
        }
    }
}

/// A change a logged-in customer made, before it becomes a [`CustomerRequest`]: one
/// activity at the customer (more may be added), the record doubling as the message
/// payload, and the standard receipt (`schemas/request-receipt.response.schema.json`)
/// extended by `answer`.
pub struct Draft {
    pub request_id: RequestId,
    pub kind: RequestKind,
    pub customer: CustomerNumber,
    pub now: OffsetDateTime,
    pub activity_type: &'static str,
    pub subject: String,
    pub details: Value,
    pub mirror_updates: Vec<MirrorUpdate>,
    pub claim: Option<IdempotencyClaim>,
    pub answer: Map<String, Value>,
}

impl Draft {
    pub fn request(self) -> CustomerRequest {
        // Milliseconds, as stored: a replayed answer shows the same time.
        let at = self.now.replace_nanosecond(self.now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(self.now);
        let mut answer = Map::from_iter([
            ("requestId".to_owned(), json!(self.request_id)),
            ("status".to_owned(), json!("RECEIVED")),
            ("requestType".to_owned(), json!(self.kind.as_str())),
            ("submittedAt".to_owned(), json!(timestamp::format(at))),
            ("customerNumber".to_owned(), json!(self.customer)),
        ]);
        answer.extend(self.answer);
        CustomerRequest {
            request_id: self.request_id,
            kind: self.kind,
            activities: vec![Activity {
                owner: ActivityOwner::Customer(self.customer.clone()),
                activity_type: self.activity_type,
                subject: self.subject,
                text: None,
                route_to: None,
            }],
            customer: Some(self.customer),
            channel: Channel::Portal,
            submitted_at: at,
            payload: self.details.clone(),
            record: self.details,
            mirror_updates: self.mirror_updates,
            idempotency: self.claim,
            answer: Value::Object(answer),
        }
    }
}

/// The mirror update that shows a change at once and marks the object pending. `read` is
/// the marker the rules saw: a change that committed meanwhile moved it, and then this one
/// is refused (409) instead of being decided on stale data. `before` is the object as the
/// rules read it: its values of the changed fields come back if the CRM rejects the change.
pub fn pending(
    object: MirrorObject,
    marker: &str,
    read: Option<RequestId>,
    marker_value: Value,
    mut set: Map<String, Value>,
    before: &Value,
) -> MirrorUpdate {
    let previous = previous_values(before, &set);
    set.insert(marker.to_owned(), marker_value);
    let expect = Map::from_iter([(marker.to_owned(), read.map_or(Value::Null, |r| json!(r)))]);
    MirrorUpdate::Pending { object, set, expect, previous }
}

/// The values the fields of `set` have in `before` (`null` for an absent one).
pub fn previous_values(before: &Value, set: &Map<String, Value>) -> Map<String, Value> {
    set.keys().map(|k| (k.clone(), before.get(k).cloned().unwrap_or(Value::Null))).collect()
}

/// How long after a login a sensitive change needs no password.
pub const RECENT_LOGIN: Duration = Duration::minutes(10);

/// The confirmation of a sensitive change (bank details, termination): the current
/// password, checked with the same throttle as a password change, or a session opened
/// with the password less than [`RECENT_LOGIN`] ago.
pub struct Confirmation<G, H, C> {
    pub logins: G,
    pub throttle: H,
    pub clock: C,
    pub lockout: LockoutPolicy,
}

impl<G: LoginStore, H: LoginThrottle, C: Clock> Confirmation<G, H, C> {
    /// Where a sensitive change is announced: the login's own address, which a session
    /// cannot change, and the address the CRM had for the customer before the change (a
    /// login registered with a stranger's customer number still reaches the customer).
    pub async fn notice_addresses(&self, caller: &Caller, crm_email: Option<String>) -> Vec<String> {
        let login_email = match self.logins.get(&caller.login_id).await {
            Ok(login) => login.map(|l| l.email),
            Err(e) => {
                tracing::warn!(error = %e, "login not read; only the customer's address is told");
                None
            }
        };
        let mut to: Vec<String> = Vec::new();
        for address in login_email.into_iter().chain(crm_email).filter(|a| !a.trim().is_empty()) {
            if !to.iter().any(|t| crate::identification::same_address(t, &address)) {
                to.push(address);
            }
        }
        to
    }

    pub async fn confirm(&self, caller: &Caller, current_password: Option<&SecretString>) -> Result<(), ChangeError> {
        let now = self.clock.now();
        let Some(password) = current_password else {
            return if now - caller.signed_in_at <= RECENT_LOGIN {
                Ok(())
            } else {
                Err(ChangeError::ReauthenticationRequired)
            };
        };
        // The same budget as a password change: a session does not get two.
        let subject = format!("password-change#{}", caller.login_id);
        let attempt = async {
            let login = self.logins.get(&caller.login_id).await?;
            Ok((login.is_some_and(|l| verify_password(password, &l.password_hash)), ()))
        };
        match throttled(&self.throttle, &self.lockout, now, &subject, attempt).await {
            Ok((true, ())) => Ok(()),
            Ok((false, ())) => Err(ChangeError::CurrentPasswordWrong),
            Err(AccessError::TooManyAttempts { retry_after }) => Err(ChangeError::TooManyAttempts { retry_after }),
            Err(AccessError::Store(e)) => Err(e.into()),
            Err(other) => Err(StoreError(other.to_string()).into()),
        }
    }
}

/// Tells the customer about a sensitive change at every address of
/// [`Confirmation::notice_addresses`], so that a change he did not make does not go
/// unnoticed. Returns how many mails went out; a failure is logged and does not undo the
/// committed change.
pub async fn notify(mailer: &impl Mailer, to: &[String], subject: &str, text: String) -> usize {
    if to.is_empty() {
        tracing::info!("no e-mail address on file; change notification not sent");
    }
    let mut sent = 0;
    for address in to {
        let mail = Mail { to: address.clone(), subject: subject.to_owned(), text: SecretString::from(text.clone()) };
        match mailer.send(mail).await {
            Ok(()) => sent += 1,
            Err(e) => tracing::warn!(error = %e, "change notification not sent"),
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::identity::LoginRecord;
    use crate::identity::credentials::hash_password;
    use crate::ids::{CustomerNumber, LoginId};
    use crate::memory::{MemoryLogins, MemoryMailer, MemoryThrottle, MemoryWriter};
    use time::macros::datetime;

    fn caller(signed_in_at: time::OffsetDateTime) -> Caller {
        Caller {
            login_id: LoginId::parse("L-1").unwrap(),
            partner_numbers: vec![CustomerNumber::parse("1000002").unwrap()],
            must_change_password: false,
            token_hash: String::new(),
            signed_in_at,
        }
    }

    fn confirmation() -> Confirmation<MemoryLogins, MemoryThrottle, FixedClock> {
        let logins = MemoryLogins::default();
        logins.insert(LoginRecord {
            login_id: LoginId::parse("L-1").unwrap(),
            username: "jmueller".into(),
            email: "j@example.org".into(),
            status: crate::entities::LoginStatus::Active,
            partner_numbers: vec![CustomerNumber::parse("1000002").unwrap()],
            must_change_password: false,
            password_hash: hash_password(&SecretString::from("Richtig-2026!")),
            password_expires_at: None,
            created_at: datetime!(2024-01-01 0:00 UTC),
            session_generation: 0,
        });
        Confirmation {
            logins,
            throttle: MemoryThrottle::default(),
            clock: FixedClock(datetime!(2026-12-01 12:00 UTC)),
            lockout: LockoutPolicy::default(),
        }
    }

    #[test]
    fn a_recent_login_or_the_current_password_confirms_a_sensitive_change() {
        let c = confirmation();
        let run = |caller: Caller, pw: Option<&str>| {
            let pw = pw.map(SecretString::from);
            futures::executor::block_on(c.confirm(&caller, pw.as_ref()))
        };
        assert!(run(caller(datetime!(2026-12-01 11:51 UTC)), None).is_ok(), "9 minutes ago");
        assert!(matches!(
            run(caller(datetime!(2026-12-01 11:49 UTC)), None),
            Err(ChangeError::ReauthenticationRequired)
        ));
        assert!(run(caller(datetime!(2026-12-01 08:00 UTC)), Some("Richtig-2026!")).is_ok());
        assert!(matches!(
            run(caller(datetime!(2026-12-01 11:59 UTC)), Some("Falsch")),
            Err(ChangeError::CurrentPasswordWrong)
        ));
        // Guessing is throttled like a password change.
        let mut last = None;
        for _ in 0..8 {
            last = Some(run(caller(datetime!(2026-12-01 08:00 UTC)), Some("Falsch")));
        }
        assert!(matches!(last, Some(Err(ChangeError::TooManyAttempts { .. }))), "{last:?}");
    }

    #[test]
    fn a_recent_login_is_one_of_at_most_ten_minutes() {
        let c = confirmation();
        let run = |signed_in_at| futures::executor::block_on(c.confirm(&caller(signed_in_at), None));
        assert!(run(datetime!(2026-12-01 11:50 UTC)).is_ok(), "exactly ten minutes ago");
        assert!(matches!(run(datetime!(2026-12-01 11:49:59 UTC)), Err(ChangeError::ReauthenticationRequired)));
    }

    #[test]
    fn the_notice_goes_to_the_logins_address_and_to_the_crms_once_each() {
        let c = confirmation();
        let at = |caller: Caller, customer: Option<&str>| {
            futures::executor::block_on(c.notice_addresses(&caller, customer.map(str::to_owned)))
        };
        let signed_in = datetime!(2026-12-01 11:00 UTC);
        assert_eq!(at(caller(signed_in), Some("c@example.org")), ["j@example.org", "c@example.org"]);
        assert_eq!(at(caller(signed_in), Some("J@Example.org")), ["j@example.org"], "one address, any case");
        assert_eq!(at(caller(signed_in), None), ["j@example.org"]);
        let other = Caller { login_id: LoginId::parse("L-2").unwrap(), ..caller(signed_in) };
        assert_eq!(at(other.clone(), Some("c@example.org")), ["c@example.org"]);
        assert!(at(other, None).is_empty());
        let broken = Confirmation {
            logins: BrokenLogins,
            throttle: MemoryThrottle::default(),
            clock: FixedClock(datetime!(2026-12-01 12:00 UTC)),
            lockout: LockoutPolicy::default(),
        };
        let to = futures::executor::block_on(broken.notice_addresses(&caller(signed_in), Some("c@x.org".into())));
        assert_eq!(to, ["c@x.org"]);
        let r = futures::executor::block_on(broken.confirm(&caller(signed_in), Some(&SecretString::from("x"))));
        assert!(matches!(r, Err(ChangeError::Store(_))), "{r:?}");
    }

    struct BrokenLogins;

    impl LoginStore for BrokenLogins {
        async fn by_claim(&self, _: &str) -> Result<Option<LoginRecord>, StoreError> {
            Err(StoreError("down".into()))
        }
        async fn get(&self, _: &LoginId) -> Result<Option<LoginRecord>, StoreError> {
            Err(StoreError("down".into()))
        }
        async fn by_email(&self, _: &str) -> Result<Vec<LoginRecord>, StoreError> {
            Err(StoreError("down".into()))
        }
        async fn set_password(&self, _: &LoginId, _: &str) -> Result<u32, StoreError> {
            Err(StoreError("down".into()))
        }
    }

    struct BrokenMailer;

    impl Mailer for BrokenMailer {
        async fn send(&self, _: Mail) -> Result<(), StoreError> {
            Err(StoreError("down".into()))
        }
    }

    #[test]
    fn a_notice_goes_out_to_every_address() {
        let mailer = MemoryMailer::default();
        let send = |to: &[&str]| {
            let to: Vec<String> = to.iter().map(|t| t.to_string()).collect();
            futures::executor::block_on(notify(&mailer, &to, "Betreff", "Text".into()))
        };
        assert_eq!(send(&[]), 0);
        assert_eq!(send(&["a@example.org", "b@example.org"]), 2);
        assert_eq!(
            mailer.sent(),
            [("a@example.org".to_owned(), "Betreff".to_owned()), ("b@example.org".to_owned(), "Betreff".to_owned())]
        );
        assert_eq!(mailer.texts(), ["Text", "Text"]);
        assert_eq!(futures::executor::block_on(notify(&BrokenMailer, &["a@example.org".into()], "B", "T".into())), 0);
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).unwrap()
    }

    #[test]
    fn a_claim_is_scoped_to_operation_and_object_and_replays_only_the_same_body() {
        assert_eq!(claim("op", "800000001", None), None);
        let c = claim("op", "800000001", Some((key("k-1"), "fp".into()))).unwrap();
        assert_eq!((c.scope.as_str(), c.fingerprint.as_str()), ("op#800000001#k-1", "fp"));
        let answer = |fp: &str| StoredAnswer {
            request_id: RequestId::new_random(),
            fingerprint: fp.into(),
            body: json!({"a": 1}),
        };
        assert_eq!(replay(Some(answer("fp")), &Some(c.clone())).unwrap(), Some(json!({"a": 1})));
        assert!(matches!(replay(Some(answer("other")), &Some(c.clone())), Err(ChangeError::IdempotencyKeyReused)));
        assert_eq!(replay(None, &Some(c.clone())).unwrap(), None);
        assert_eq!(replay(Some(answer("fp")), &None).unwrap(), None);

        let writer = MemoryWriter::default();
        assert_eq!(futures::executor::block_on(stored(&writer, &Some(c.clone()))).unwrap(), None);
        futures::executor::block_on(commit(&writer, draft(Some(c.clone())).request())).unwrap();
        let found = futures::executor::block_on(stored(&writer, &Some(c))).unwrap().unwrap();
        assert_eq!(found.fingerprint, "fp");
        assert_eq!(futures::executor::block_on(stored(&writer, &None)).unwrap(), None);
    }

    fn draft(claim: Option<IdempotencyClaim>) -> Draft {
        Draft {
            request_id: RequestId::new_random(),
            kind: RequestKind::BillingAddressChange,
            customer: CustomerNumber::parse("1000001").unwrap(),
            now: datetime!(2026-12-01 09:00:00.123_456_789 UTC),
            activity_type: "BILLING_ADDRESS_CHANGED",
            subject: "Betreff".into(),
            details: json!({"x": 1}),
            mirror_updates: Vec::new(),
            claim,
            answer: Map::from_iter([("accountNumber".to_owned(), json!("800000001"))]),
        }
    }

    #[test]
    fn a_draft_becomes_a_request_at_the_millisecond_with_the_standard_receipt() {
        let d = draft(None);
        let id = d.request_id;
        let r = d.request();
        assert_eq!(r.submitted_at, datetime!(2026-12-01 09:00:00.123 UTC));
        assert_eq!(
            r.answer,
            json!({
                "requestId": id, "status": "RECEIVED", "requestType": "BILLING_ADDRESS_CHANGE",
                "submittedAt": "2026-12-01T09:00:00.123Z", "customerNumber": "1000001", "accountNumber": "800000001",
            })
        );
        assert_eq!((r.record.clone(), r.payload.clone()), (json!({"x": 1}), json!({"x": 1})));
        assert_eq!((r.channel, r.customer.as_ref().map(CustomerNumber::as_str)), (Channel::Portal, Some("1000001")));
        assert_eq!(
            r.activities,
            [Activity {
                owner: ActivityOwner::Customer(CustomerNumber::parse("1000001").unwrap()),
                activity_type: "BILLING_ADDRESS_CHANGED",
                subject: "Betreff".into(),
                text: None,
                route_to: None
            }]
        );
    }

    #[test]
    fn a_pending_update_expects_the_marker_the_rules_read() {
        let object = MirrorObject::Partner(CustomerNumber::parse("1000001").unwrap());
        let read = RequestId::new_random();
        let MirrorUpdate::Pending { object: o, set, expect, previous } = pending(
            object.clone(),
            "pendingChange",
            Some(read),
            json!("new"),
            Map::from_iter([("a".to_owned(), json!(1)), ("b".to_owned(), json!(2))]),
            &json!({"a": 0, "c": 9}),
        ) else {
            panic!()
        };
        assert_eq!(o, object);
        assert_eq!(Value::Object(set), json!({"a": 1, "b": 2, "pendingChange": "new"}));
        assert_eq!(Value::Object(expect), json!({"pendingChange": read}));
        // What a rejection puts back: the changed fields as they were (absent: null).
        assert_eq!(Value::Object(previous), json!({"a": 0, "b": null}));
        let MirrorUpdate::Pending { expect, .. } = pending(object, "m", None, json!(1), Map::new(), &Value::Null)
        else {
            panic!()
        };
        assert_eq!(Value::Object(expect), json!({"m": null}));
    }

    #[test]
    fn every_write_refusal_has_its_answer() {
        let claimed = claim("op", "s", Some((key("k"), "fp".into())));
        let outcome = |prepare: &dyn Fn(&MemoryWriter), claim: Option<IdempotencyClaim>| {
            let writer = MemoryWriter::default();
            prepare(&writer);
            futures::executor::block_on(commit(&writer, draft(claim).request()))
        };
        for refusal in [WriteError::Conflict, WriteError::ClaimTaken("x".into()), WriteError::TokenNotUsable] {
            let r = outcome(&|w| w.refuse_next_commit(refusal.clone()), None);
            assert!(matches!(r, Err(ChangeError::Conflict)), "{r:?}");
        }
        let r = outcome(&|w| w.refuse_next_commit(WriteError::Store(StoreError("down".into()))), None);
        assert!(matches!(&r, Err(ChangeError::Store(StoreError(m))) if m == "down"), "{r:?}");
        let r = outcome(&|w| w.refuse_next_commit(WriteError::IdempotencyKeyTaken), None);
        assert!(matches!(r, Err(ChangeError::Store(_))), "{r:?}");
        let r = outcome(&|w| w.lose_next_race(None), claimed.clone());
        assert!(matches!(r, Err(ChangeError::RequestInProgress)), "{r:?}");
        let winner = |fp: &str| StoredAnswer {
            request_id: RequestId::new_random(),
            fingerprint: fp.into(),
            body: json!("winner"),
        };
        let r = outcome(&|w| w.lose_next_race(Some(winner("fp"))), claimed.clone());
        assert_eq!(r.unwrap(), json!("winner"));
        let r = outcome(&|w| w.lose_next_race(Some(winner("other"))), claimed.clone());
        assert!(matches!(r, Err(ChangeError::IdempotencyKeyReused)), "{r:?}");
        let ok = outcome(&|_| {}, claimed).unwrap();
        assert_eq!(ok["status"], "RECEIVED");
        let e = ChangeError::invalid("/a", "CODE", "message");
        assert!(
            matches!(e, ChangeError::Invalid { ref pointer, code: "CODE", ref message } if pointer == "/a" && message == "message")
        );
        let e = ChangeError::not_possible("CODE", "message");
        assert!(matches!(e, ChangeError::NotPossible { code: "CODE", ref message } if message == "message"));
    }
}
