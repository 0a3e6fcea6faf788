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
use crate::requests::{Activity, ActivityOwner, Channel, CustomerRequest, RequestKind};
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
    pub default_department: String,
    /// Anonymous messages per hour from one client address, and to one sender address.
    pub anonymous_per_hour: u32,
}

impl Default for MessagePolicy {
    fn default() -> Self {
        Self { default_department: "kundenservice".into(), anonymous_per_hour: 5 }
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
        let route = match customer.as_ref().and_then(|p| p.account_manager.clone()) {
            Some(manager) => json!({ "kind": "ACCOUNT_MANAGER", "target": manager }),
            None => json!({
                "kind": "DEPARTMENT",
                "target": reason.route_to.clone().unwrap_or_else(|| self.policy.default_department.clone()),
            }),
        };
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
            }],
            mirror_updates: Vec::new(),
            payload: details,
            idempotency: claim,
            answer,
        };
        changes::commit(&self.writer, request).await
    }
}
