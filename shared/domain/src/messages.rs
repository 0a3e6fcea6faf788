//! Messages through the contact form (capability 10): a reason from the code list, with
//! a session filed at the customer, without one unassigned with the sender's name and
//! e-mail. Routed to the customer's account manager where he has one, else to the
//! reason's department (`routeTo`), else to the default department. Anonymous sending
//! is rate-limited per client address and per sender address.

use crate::changes::{self, ChangeError};
use crate::clock::Clock;
use crate::entities::timestamp;
use crate::identity::credentials::EmailAddress;
use crate::identity::sessions::Caller;
use crate::ids::{CustomerNumber, IdempotencyKey, RequestId};
use crate::ports::{AttemptLimiter, RequestWriter};
use crate::reads::{Catalog, ScopedReads};
use crate::requests::{Activity, ActivityOwner, Channel, CustomerRequest, Delegation, RequestKind};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct MessageInput {
    pub reason: String,
    pub subject: String,
    pub text: String,
    /// With a session: which of the login's customers (default: the first).
    pub customer: Option<CustomerNumber>,
    /// Without a session: who writes.
    pub sender: Option<(String, EmailAddress)>,
}

/// Routing and limits (configuration).
#[derive(Debug, Clone)]
pub struct MessagePolicy {
    /// Whether and how the message's activity is delegated (default: not at all).
    pub delegation: Delegation,
    /// The department of a reason without one of its own, when delegating by department.
    pub default_department: String,
    /// Anonymous messages per hour from one client address, and to one sender address.
    pub anonymous_per_hour: u32,
}

impl Default for MessagePolicy {
    fn default() -> Self {
        Self { delegation: Delegation::None, default_department: "kundenservice".into(), anonymous_per_hour: 5 }
    }
}

pub struct MessageService<R, L, W, C> {
    pub reads: R,
    pub limiter: L,
    pub writer: W,
    pub clock: C,
    pub policy: MessagePolicy,
}

impl<R: ScopedReads + Catalog, L: AttemptLimiter, W: RequestWriter, C: Clock> MessageService<R, L, W, C> {
    async fn within_limit(&self, subject: &str) -> Result<bool, ChangeError> {
        let hour = self.clock.now().unix_timestamp().div_euclid(3600);
        let key = format!("message#{subject}#{hour}");
        Ok(self.limiter.attempt(&key, self.policy.anonymous_per_hour, (hour + 2) * 3600).await?)
    }

    /// Records a message. `client` identifies the sending address for the rate limit.
    pub async fn send(
        &self,
        caller: Option<&Caller>,
        client: &str,
        input: MessageInput,
        idempotency: Option<(IdempotencyKey, String)>,
    ) -> Result<Value, ChangeError> {
        // With a session the login is the sender; without one, a name and an address.
        let sender = match caller {
            Some(_) => None,
            None => input.sender.clone().filter(|(name, _)| !name.trim().is_empty()),
        };
        let subject_key = match (caller, &sender) {
            (Some(c), _) => c.login_id.to_string(),
            (None, Some((_, email))) => email.as_str().to_owned(),
            (None, None) => {
                return Err(ChangeError::invalid(
                    "/email",
                    "SENDER_REQUIRED",
                    "without logging in, give your name and e-mail address",
                ));
            }
        };
        let claim = changes::claim("message", &subject_key, idempotency);
        // The customer, an earlier answer under the same key and the reasons: one round.
        let customer = async {
            let Some(c) = caller else { return Ok(None) };
            let wanted = input.customer.clone().or_else(|| c.partner_numbers.first().cloned());
            let wanted = wanted.ok_or(ChangeError::NotFound)?;
            Ok::<_, ChangeError>(Some(self.reads.partner(c, &wanted).await?.ok_or(ChangeError::NotFound)?))
        };
        let (customer, earlier, reasons) =
            futures::join!(customer, changes::stored(&self.writer, &claim), self.reads.code_list("messageReasons"));
        let customer = customer?;
        if let Some(answer) = changes::replay(earlier?, &claim)? {
            return Ok(answer);
        }
        let reasons = reasons?;
        let reason = reasons.iter().find(|r| r.key == input.reason).ok_or_else(|| {
            ChangeError::invalid("/reason", "UNKNOWN_REASON", "not a message reason of the code list")
        })?;
        if customer.is_none() {
            let client_key = format!("client#{client}");
            let (by_client, by_sender) =
                futures::join!(self.within_limit(&client_key), self.within_limit(&subject_key));
            if !(by_client? && by_sender?) {
                return Err(ChangeError::TooManyAttempts { retry_after: time::Duration::hours(1) });
            }
        }
        let manager = customer.as_ref().and_then(|p| p.account_manager.as_deref());
        let department = reason.route_to.as_deref().unwrap_or(&self.policy.default_department);
        let route = self.policy.delegation.route(manager, Some(department));
        let request_id = RequestId::new_random();
        let now = self.clock.now();
        let at = now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now);
        let customer_number = customer.map(|p| p.partner_number);
        let sender = sender.as_ref().map(|(name, email)| json!({ "name": name.trim(), "email": email.as_str() }));
        let details = json!({
            "reason": reason.key,
            "subject": input.subject,
            "text": input.text,
            "routeTo": route,
            "sender": sender,
            "customerNumber": customer_number,
        });
        let owner = match &customer_number {
            Some(c) => ActivityOwner::Customer(c.clone()),
            None => ActivityOwner::Unassigned(request_id),
        };
        let answer = json!({
            "requestId": request_id,
            "status": "RECEIVED",
            "requestType": RequestKind::Message.as_str(),
            "submittedAt": timestamp::format(at),
        });
        let request = CustomerRequest {
            request_id,
            kind: RequestKind::Message,
            customer: customer_number,
            channel: if caller.is_some() { Channel::Portal } else { Channel::PortalAnonymous },
            submitted_at: at,
            record: details.clone(),
            activities: vec![Activity {
                owner,
                activity_type: "CUSTOMER_MESSAGE",
                subject: format!("{}: {}", reason.label, input.subject),
                text: Some(input.text.clone()),
                route_to: route,
            }],
            mirror_updates: Vec::new(),
            payload: details,
            idempotency: claim,
            answer,
        };
        changes::commit(&self.writer, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::memory::{MemoryDirectory, MemoryLimiter, MemoryWriter};
    use crate::requests::Route;
    use crate::testkit::{NOW, caller, customer, demo, key, run};
    use time::macros::datetime;

    type Service = MessageService<MemoryDirectory, MemoryLimiter, MemoryWriter, FixedClock>;

    fn service() -> Service {
        MessageService {
            reads: MemoryDirectory::new(demo()),
            limiter: MemoryLimiter::default(),
            writer: MemoryWriter::default(),
            clock: FixedClock(NOW),
            policy: MessagePolicy { delegation: Delegation::AccountManagerThenDepartment, ..MessagePolicy::default() },
        }
    }

    fn input(reason: &str, customer: Option<&str>, sender: Option<(&str, &str)>) -> MessageInput {
        MessageInput {
            reason: reason.into(),
            subject: "Betreff".into(),
            text: "Text".into(),
            customer: customer.map(crate::testkit::customer),
            sender: sender.map(|(n, e)| (n.to_owned(), EmailAddress::parse(e).unwrap())),
        }
    }

    fn code(r: Result<Value, ChangeError>) -> &'static str {
        match r {
            Err(ChangeError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_customers_message_goes_to_his_account_manager_else_to_the_reasons_department() {
        let s = service();
        let c = caller(&["1000001", "1000003"]);
        let answer = run(s.send(Some(&c), "1.2.3.4", input("BILLING", None, None), None)).unwrap();
        run(s.send(Some(&c), "1.2.3.4", input("OTHER", Some("1000001"), None), None)).unwrap();
        run(s.send(Some(&c), "1.2.3.4", input("BILLING", Some("1000003"), None), None)).unwrap();
        let committed = s.writer.committed();
        let r = &committed[0];
        assert_eq!(answer["requestId"], json!(r.request_id));
        assert_eq!((answer["status"].as_str(), answer["requestType"].as_str()), (Some("RECEIVED"), Some("MESSAGE")));
        assert_eq!((r.customer.clone(), r.channel), (Some(customer("1000001")), Channel::Portal));
        assert_eq!(r.record["routeTo"], json!({"kind": "DEPARTMENT", "target": "abrechnung"}));
        assert_eq!((r.record["sender"].clone(), r.record["customerNumber"].clone()), (Value::Null, json!("1000001")));
        assert_eq!(r.activities[0].owner.key(), "BP#1000001");
        assert_eq!(r.activities[0].subject, "Frage zur Rechnung: Betreff");
        assert_eq!(committed[1].record["routeTo"], json!({"kind": "DEPARTMENT", "target": "kundenservice"}));
        assert_eq!(committed[2].record["routeTo"], json!({"kind": "ACCOUNT_MANAGER", "target": "vertrieb-gewerbe"}));
        assert_eq!(s.limiter.total(), 0, "a logged-in customer is not rate-limited");
        let r = run(s.send(Some(&c), "1.2.3.4", input("BILLING", Some("1000002"), None), None));
        assert!(matches!(r, Err(ChangeError::NotFound)), "{r:?}");
        let r = run(s.send(Some(&caller(&[])), "1.2.3.4", input("BILLING", None, None), None));
        assert!(matches!(r, Err(ChangeError::NotFound)), "{r:?}");
        assert_eq!(code(run(s.send(Some(&c), "1.2.3.4", input("NOPE", None, None), None))), "UNKNOWN_REASON");
    }

    #[test]
    fn by_default_a_message_is_not_delegated_and_each_mode_routes_as_configured() {
        let manager = Some("vertrieb-gewerbe");
        let department = Some("abrechnung");
        let (m, d) = (Route::AccountManager("vertrieb-gewerbe".into()), Route::Department("abrechnung".into()));
        assert_eq!(Delegation::default(), Delegation::None);
        assert_eq!(Delegation::None.route(manager, department), None);
        assert_eq!(Delegation::AccountManager.route(manager, department), Some(m.clone()));
        assert_eq!(Delegation::AccountManager.route(None, department), None);
        assert_eq!(Delegation::Department.route(manager, department), Some(d.clone()));
        assert_eq!(Delegation::AccountManagerThenDepartment.route(manager, department), Some(m.clone()));
        assert_eq!(Delegation::AccountManagerThenDepartment.route(None, department), Some(d.clone()));
        assert_eq!(Delegation::DepartmentThenAccountManager.route(manager, department), Some(d));
        assert_eq!(Delegation::DepartmentThenAccountManager.route(manager, None), Some(m));
        for (raw, mode) in [
            ("NONE", Delegation::None),
            ("ACCOUNT_MANAGER", Delegation::AccountManager),
            ("DEPARTMENT", Delegation::Department),
            ("ACCOUNT_MANAGER_THEN_DEPARTMENT", Delegation::AccountManagerThenDepartment),
            ("DEPARTMENT_THEN_ACCOUNT_MANAGER", Delegation::DepartmentThenAccountManager),
        ] {
            assert_eq!(Delegation::parse(raw), Some(mode));
        }
        assert_eq!(Delegation::parse("none"), None);

        // The shipped default: the bakery's message (it has an account manager) is filed
        // undelegated; the activity carries the text for the CRM.
        let s = MessageService { policy: MessagePolicy::default(), ..service() };
        run(s.send(Some(&caller(&["1000003"])), "1.2.3.4", input("BILLING", None, None), None)).unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.record["routeTo"], Value::Null);
        assert_eq!((r.activities[0].route_to.clone(), r.activities[0].text.as_deref()), (None, Some("Text")));
        let message = r.envelope();
        assert_eq!(
            message.activities[0],
            json!({"type": "CUSTOMER_MESSAGE", "subject": "Frage zur Rechnung: Betreff", "text": "Text",
                   "object": {"kind": "BUSINESS_PARTNER", "id": "1000003"}, "routeTo": null})
        );
        // Delegated by department: the reason's department, also for a customer with a manager.
        let s = MessageService {
            policy: MessagePolicy { delegation: Delegation::Department, ..MessagePolicy::default() },
            ..service()
        };
        run(s.send(Some(&caller(&["1000003"])), "1.2.3.4", input("BILLING", None, None), None)).unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(r.record["routeTo"], json!({"kind": "DEPARTMENT", "target": "abrechnung"}));
        assert_eq!(r.envelope().activities[0]["routeTo"], json!({"kind": "DEPARTMENT", "target": "abrechnung"}));
    }

    #[test]
    fn an_anonymous_message_names_its_sender_and_is_unassigned() {
        let mut s = service();
        s.clock = FixedClock(datetime!(2026-12-01 09:00:00.456_789 UTC));
        let answer =
            run(s.send(None, "1.2.3.4", input("METER", None, Some((" Max Muster ", "max@example.org"))), None))
                .unwrap();
        let r = &s.writer.committed()[0];
        assert_eq!(answer["submittedAt"], "2026-12-01T09:00:00.456Z");
        assert_eq!(r.submitted_at, datetime!(2026-12-01 09:00:00.456 UTC));
        assert_eq!((r.customer.clone(), r.channel), (None, Channel::PortalAnonymous));
        assert_eq!(r.record["sender"], json!({"name": "Max Muster", "email": "max@example.org"}));
        assert_eq!(r.record["routeTo"], json!({"kind": "DEPARTMENT", "target": "messwesen"}));
        assert_eq!(r.activities[0].owner, ActivityOwner::Unassigned(r.request_id));
        for sender in [None, Some((" ", "max@example.org"))] {
            assert_eq!(code(run(s.send(None, "1.2.3.4", input("METER", None, sender), None))), "SENDER_REQUIRED");
        }
        // A session's login is the sender: a sender given as well is ignored.
        run(s.send(
            Some(&caller(&["1000001"])),
            "1.2.3.4",
            input("METER", None, Some(("Max", "max@example.org"))),
            None,
        ))
        .unwrap();
        assert_eq!(s.writer.committed()[1].record["sender"], Value::Null);
    }

    #[test]
    fn anonymous_messages_are_limited_per_client_and_per_sender_address() {
        let s = service();
        let send =
            |client: &str, email: &str| run(s.send(None, client, input("OTHER", None, Some(("Max", email))), None));
        for i in 0..5 {
            send("1.2.3.4", &format!("max{i}@example.org")).unwrap();
        }
        let r = send("1.2.3.4", "new@example.org");
        assert!(
            matches!(r, Err(ChangeError::TooManyAttempts { retry_after }) if retry_after == time::Duration::hours(1)),
            "{r:?}"
        );
        for i in 0..5 {
            send(&format!("10.0.0.{i}"), "erika@example.org").unwrap();
        }
        assert!(matches!(send("10.0.0.9", "erika@example.org"), Err(ChangeError::TooManyAttempts { .. })));
        assert_eq!(s.writer.committed().len(), 10);
        let hour = NOW.unix_timestamp().div_euclid(3600);
        let windows = s.limiter.windows();
        assert_eq!(windows[&format!("message#client#1.2.3.4#{hour}")], (5, (hour + 2) * 3600));
        assert_eq!(windows[&format!("message#erika@example.org#{hour}")], (5, (hour + 2) * 3600));
    }

    #[test]
    fn a_retry_replays_the_answer_per_sender() {
        let s = service();
        let c = caller(&["1000001"]);
        let first = run(s.send(Some(&c), "1.2.3.4", input("BILLING", None, None), key("k", "fp"))).unwrap();
        assert_eq!(run(s.send(Some(&c), "1.2.3.4", input("BILLING", None, None), key("k", "fp"))).unwrap(), first);
        let r = run(s.send(Some(&c), "1.2.3.4", input("BILLING", None, None), key("k", "other")));
        assert!(matches!(r, Err(ChangeError::IdempotencyKeyReused)), "{r:?}");
        assert_eq!(s.writer.committed()[0].idempotency.as_ref().unwrap().scope.as_str(), "message#L-1#k");
        let anonymous =
            run(s.send(None, "1.2.3.4", input("BILLING", None, Some(("Max", "max@example.org"))), key("k", "fp")));
        anonymous.unwrap();
        assert_eq!(s.writer.committed()[1].idempotency.as_ref().unwrap().scope.as_str(), "message#max@example.org#k");
    }
}
