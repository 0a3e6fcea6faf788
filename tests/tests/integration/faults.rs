//! Faults, and the definition of "nothing lost": with C the request ids committed in the
//! transaction tables and S the distinct ids delivered on the requests queue (and its
//! dead-letter queue), after the faults and the relay's recovery C = S, each id is delivered
//! once, nothing is pending, every request answered with success is in C, and a request
//! retried under its Idempotency-Key is in C once.
//!
//! Faults are injected into the AWS clients: calls that fail before they reach the
//! emulator (not applied), a transaction whose answer is lost after the emulator applied it
//! (the nastiest: the client cannot know whether it committed), and an outage in which no
//! call gets through.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use integration_tests::{Stack, isolated_stack_with_demo, s};
use portal_domain::clock::SystemClock;
use portal_domain::contact::{Change, ContactChange, ContactService, PhoneNumber};
use portal_domain::identity::sessions::Caller;
use portal_domain::ids::{CustomerNumber, IdempotencyKey, LoginId};
use portal_platform::aws::{Clients, EmulatorAccount};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Fails a share of the calls of some operations, deterministically by call number.
#[derive(Debug, Clone, Default)]
struct Faults {
    calls: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    injected: Arc<AtomicUsize>,
    /// An outage: while set, no call reaches the emulator.
    down: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug, Clone)]
struct LoseAnswer;

impl Storable for LoseAnswer {
    type Storer = StoreReplace<Self>;
}

impl Faults {
    /// What happens to the `n`-th call of an operation.
    fn plan(operation: &str, n: usize) -> Option<&'static str> {
        match (operation, n % 6) {
            ("TransactWriteItems", 1) => Some("fail"),
            ("TransactWriteItems", 4) => Some("lose answer"),
            ("SendMessage", 2) | ("UpdateItem", 3) | ("Query", 5) | ("GetItem", 5) => Some("fail"),
            _ => None,
        }
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "Faults"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.down.load(Ordering::SeqCst) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err("injected: the AWS endpoint is down".into());
        }
        let request = context.request();
        let operation = match request.headers().get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
            None => return Ok(()),
        };
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(operation.clone()).or_default();
            *n += 1;
            *n
        };
        match Self::plan(&operation, n) {
            Some("fail") => {
                self.injected.fetch_add(1, Ordering::SeqCst);
                Err(format!("injected: {operation} failed").into())
            }
            Some(_) => {
                cfg.interceptor_state().store_put(LoseAnswer);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn read_before_deserialization(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<LoseAnswer>().is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err("injected: the answer was lost after the call was applied".into());
        }
        Ok(())
    }
}

fn faulty_clients(stack: &Stack, faults: &Faults) -> Clients {
    let account = EmulatorAccount(stack.account.clone());
    let dynamo = aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
        .interceptor(account.clone())
        .interceptor(faults.clone())
        .build();
    let sqs = aws_sdk_sqs::config::Builder::from(&stack.sdk).interceptor(account).interceptor(faults.clone()).build();
    Clients {
        dynamo: aws_sdk_dynamodb::Client::from_conf(dynamo),
        sqs: aws_sdk_sqs::Client::from_conf(sqs),
        ..stack.clients.clone()
    }
}

#[tokio::test]
async fn nothing_is_lost_or_doubled_when_dynamodb_and_sqs_fail() {
    let stack = isolated_stack_with_demo().await;
    let faults = Faults::default();
    let faulty = faulty_clients(&stack, &faults);
    let live = portal_platform::live::Live { config: stack.config.clone(), clients: faulty.clone() };
    let service = ContactService {
        reads: live.reads(),
        writer: live.writer(),
        confirmation: live.confirmation(),
        mailer: live.mailer(),
        clock: SystemClock,
    };
    let caller = Caller {
        login_id: LoginId::parse("L-0000003").unwrap(),
        partner_numbers: vec![CustomerNumber::parse("1000003").unwrap()],
        must_change_password: false,
        token_hash: String::new(),
        signed_in_at: time::OffsetDateTime::now_utc(),
    };
    let customer = CustomerNumber::parse("1000003").unwrap();

    // 30 changes, each retried under its key until it is answered (as a client would);
    // during changes 10 to 14 the AWS endpoint is down for good: they are never answered.
    let mut answered = Vec::new();
    let mut retried = 0;
    for i in 0..30 {
        faults.down.store((10..15).contains(&i), Ordering::SeqCst);
        let key = IdempotencyKey::parse(&format!("fault-{i}")).unwrap();
        let change = || ContactChange {
            phone: Change::Set(PhoneNumber::parse(&format!("+49 7472 {:06}", 100_000 + i)).unwrap()),
            ..Default::default()
        };
        let mut outcome = None;
        for attempt in 0..8 {
            match service.change(&caller, &customer, change(), Some((key.clone(), format!("fp-{i}")))).await {
                Ok(answer) => {
                    outcome = Some(answer);
                    break;
                }
                Err(_) => retried += usize::from(attempt == 0),
            }
        }
        match outcome {
            Some(answer) => answered.push(answer["requestId"].as_str().unwrap().to_owned()),
            None => assert!((10..15).contains(&i), "change {i} never answered"),
        }
    }
    faults.down.store(false, Ordering::SeqCst);
    assert_eq!(answered.len(), 25, "the changes during the outage failed, the others were answered");
    assert!(faults.injected.load(Ordering::SeqCst) >= 20, "faults were injected");
    assert!(retried > 0);

    // Recovery: the relay (healthy clients) sends what is pending.
    stack.relay().run(time::Duration::ZERO).await.unwrap();

    let t = &stack.config.tables;
    let committed: HashSet<String> =
        stack.items(&t.contact_data_changes).await.iter().map(|i| s(i, "requestId")).collect();
    let mut delivered: Vec<String> =
        stack.drain_queue().await.iter().map(|m| m["requestId"].as_str().unwrap().to_owned()).collect();
    delivered.extend(
        integration_tests::drain(&stack.clients.sqs, &stack.config.requests_dead_letter_url)
            .await
            .iter()
            .map(|m| m["requestId"].as_str().unwrap().to_owned()),
    );
    let distinct: HashSet<String> = delivered.iter().cloned().collect();
    assert_eq!(committed, distinct, "C = S");
    assert_eq!(delivered.len(), distinct.len(), "each request delivered once");
    assert_eq!(committed.len(), 25, "every answered request is in C once, nothing of the outage");
    assert!(answered.iter().all(|id| committed.contains(id)), "every answered request is in C");
    let pending = stack.items(&t.outbox).await.iter().filter(|e| s(e, "status") == "PENDING").count();
    assert_eq!(pending, 0, "nothing pending");
}
