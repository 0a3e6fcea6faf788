//! Test harness: a fresh, isolated copy of the stack on the AWS emulator for each test
//! (its own emulator account, tables and queues created from `infra/template.yaml`),
//! with the real SDK clients, and helpers to read back what a test caused.

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use portal_domain::clock::FixedClock;
use portal_domain::meter_reading::{AnonymousPolicy, MeterReadingService};
use portal_platform::aws::Clients;
use portal_platform::config::Config;
use portal_platform::dynamo::{DynamoDirectory, DynamoLimiter};
use portal_platform::write_path::{Relay, WritePath};
use serde_json::{Value, json};
use std::collections::HashMap;

pub const EMULATOR: &str = "http://127.0.0.1:4566";
pub const REGION: &str = "eu-central-1";

/// The environment `scripts/test` wrote for the test stack (names resolved from the template).
pub fn test_env() -> HashMap<String, String> {
    let path = std::env::var("PORTAL_TEST_ENV")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/test.env").to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("{path} is missing: run the tests with scripts/test, which starts the emulator and writes it")
    });
    // scripts/stack.py double-quotes a value with spaces.
    let unquote = |v: &str| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_owned();
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), unquote(v))).collect()
}

pub type Service = MeterReadingService<DynamoDirectory, DynamoLimiter, WritePath, FixedClock>;

/// One test's own copy of the stack.
pub struct Stack {
    pub account: String,
    pub config: Config,
    pub clients: Clients,
    pub sdk: aws_config::SdkConfig,
}

fn random_account() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 900_000_000_000 + 100_000_000_000;
    n.to_string()
}

/// The configuration with `function` as the user agent's app name (see `Stack::clients_of`).
pub fn named(sdk: &aws_config::SdkConfig, function: &str) -> aws_config::SdkConfig {
    sdk.to_builder().app_name(portal_platform::aws::app_name(function).expect("a valid function name")).build()
}

pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(portal_platform::aws::http_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// Creates the template's tables and queues in a new emulator account.
pub async fn isolated_stack() -> Stack {
    let env = test_env();
    let account = random_account();
    let stack_name = env.get("PORTAL_STACK_NAME").expect("PORTAL_STACK_NAME in the test env").clone();
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{EMULATOR}/"))
        .header("x-moto-account-id", &account)
        .header("authorization", format!("AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/cloudformation/aws4_request, SignedHeaders=host, Signature=0"))
        .form(&[("Action", "CreateStack"), ("Version", "2010-05-15"), ("StackName", &stack_name), ("TemplateBody", &template)])
        .send()
        .await
        .expect("the AWS emulator answers on 127.0.0.1:4566 (start it with scripts/test)");
    assert!(response.status().is_success(), "CreateStack: {}", response.text().await.unwrap_or_default());

    let default_account = "/123456789012/";
    let config = Config::from_lookup(|k| {
        env.get(k).map(|v| {
            match k {
                "REQUESTS_QUEUE_URL"
                | "REQUESTS_DLQ_URL"
                | "INBOUND_QUEUE_URL"
                | "INBOUND_DLQ_URL"
                | "PASSWORD_RESET_QUEUE_URL" => v.replace(default_account, &format!("/{account}/")),
                // Bucket names are global: the template names them with the account.
                "DOCUMENTS_BUCKET" => v.replace("123456789012", &account),
                _ => v.clone(),
            }
        })
    })
    .unwrap();
    let sdk = sdk_config(EMULATOR).await;
    let clients = Clients::from_sdk_config(&sdk, Some(&account));
    clients.ses.create_email_identity().email_identity(&config.mail_from).send().await.unwrap();
    Stack { account, config, clients, sdk }
}

/// An isolated stack with the demo CRM export imported.
pub async fn isolated_stack_with_demo() -> Stack {
    let stack = isolated_stack().await;
    let snapshot = portal_domain::export::parse_export(DEMO_EXPORT).unwrap();
    portal_platform::import::write_snapshot(&stack.clients, &stack.config, &snapshot).await.unwrap();
    stack
}

pub const DEMO_EXPORT: &str = include_str!("../../fixtures/crm-demo.json");

impl Stack {
    /// Clients of this account whose SQS endpoint is dead: every send fails.
    pub fn clients_with_sqs_down(&self) -> Clients {
        let mut down = self.sdk.to_builder();
        down.set_endpoint_url(Some("http://127.0.0.1:9".to_owned()));
        let sqs_down = Clients::from_sdk_config(&down.build(), Some(&self.account)).sqs;
        Clients { sqs: sqs_down, ..self.clients.clone() }
    }

    pub fn write_path(&self, clients: &Clients) -> WritePath {
        WritePath::new(
            clients.dynamo.clone(),
            clients.sqs.clone(),
            self.config.tables.clone(),
            self.config.requests_queue_url.clone(),
        )
    }

    /// Clients that name `function` in their user agent, as that function's own do on
    /// Lambda: the IAM test holds their calls to its policy.
    pub fn clients_of(&self, function: &str) -> Clients {
        Clients::from_sdk_config(&named(&self.sdk, function), Some(&self.account))
    }

    pub fn sync(&self) -> portal_platform::sync::InboundSync {
        portal_platform::sync::InboundSync::new(&self.clients_of("sync"), &self.config)
    }

    pub fn relay(&self) -> Relay {
        let clients = self.clients_of("relay");
        Relay::new(clients.dynamo, clients.sqs, &self.config.tables, self.config.requests_queue_url.clone())
    }

    /// The meter-reading service wired to this stack, at a fixed time.
    pub fn service(&self, clients: &Clients, clock: FixedClock) -> Service {
        MeterReadingService {
            directory: DynamoDirectory::new(clients.dynamo.clone(), self.config.tables.clone()),
            limiter: DynamoLimiter::new(clients.dynamo.clone(), &self.config.tables),
            writer: self.write_path(clients),
            clock,
            policy: AnonymousPolicy::default(),
        }
    }

    /// The production wiring over this stack's clients.
    pub fn live(&self) -> portal_platform::live::Live {
        portal_platform::live::Live { config: self.config.clone(), clients: self.clients.clone() }
    }

    pub async fn count(&self, table: &str) -> usize {
        let out = self.clients.dynamo.scan().table_name(table).select(Select::Count).send().await.unwrap();
        out.count as usize
    }

    pub async fn items(&self, table: &str) -> Vec<HashMap<String, AttributeValue>> {
        self.clients.dynamo.scan().table_name(table).send().await.unwrap().items.unwrap_or_default()
    }

    /// Receives (and deletes) every message now on the requests queue.
    pub async fn drain_queue(&self) -> Vec<Value> {
        drain(&self.clients.sqs, &self.config.requests_queue_url).await
    }
}

pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(serde_json::from_str(m.body().unwrap_or_default()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
    }
}

/// The locally served API (started by `scripts/test`).
pub fn api_url() -> String {
    std::env::var("PORTAL_API_URL").expect("PORTAL_API_URL: run the tests with scripts/test, which serves the API")
}

/// One HTTP call to the served API: status, content type and JSON body (null if none).
pub async fn call(
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, String, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", api_url()));
    if let Some(body) = body {
        req = req.json(body);
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = res.text().await.unwrap();
    (status, content_type, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// A session of a demo login opened directly in the test stack's session table (for
/// authorization tests that must not depend on logins other tests lock or change).
pub async fn demo_session(login_id: &str, partners: &[&str], must_change_password: bool) -> String {
    demo_session_signed_in(login_id, partners, must_change_password, time::OffsetDateTime::now_utc()).await
}

/// The served stack's configuration and clients (the stack the HTTP tests talk to).
pub async fn served() -> (Config, Clients) {
    let env = test_env();
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    (config, Clients::from_sdk_config(&sdk_config(EMULATOR).await, None))
}

/// A login of the served stack with a known password (for tests that confirm with it), and
/// a session of it that proved the password at `signed_in_at`.
pub async fn login_with_password(
    login_id: &str,
    partners: &[&str],
    password: &str,
    signed_in_at: time::OffsetDateTime,
) -> String {
    let hash = portal_domain::identity::credentials::hash_password(&secrecy::SecretString::from(password.to_owned()));
    let login = test_login(login_id, partners, false, hash);
    session_of(&login, signed_in_at).await
}

fn test_login(
    login_id: &str,
    partners: &[&str],
    must_change_password: bool,
    password_hash: String,
) -> portal_domain::identity::LoginRecord {
    portal_domain::identity::LoginRecord {
        login_id: portal_domain::ids::LoginId::parse(login_id).unwrap(),
        username: login_id.to_lowercase(),
        email: format!("{}@example.org", login_id.to_lowercase()),
        status: portal_domain::entities::LoginStatus::Active,
        partner_numbers: partners.iter().map(|p| portal_domain::ids::CustomerNumber::parse(p).unwrap()).collect(),
        must_change_password,
        password_hash,
        password_expires_at: None,
        created_at: time::OffsetDateTime::now_utc(),
        session_generation: 0,
    }
}

/// Stores a login in the served stack and opens a session of it that proved the password
/// at `signed_in_at` (still active now): its bearer token.
async fn session_of(login: &portal_domain::identity::LoginRecord, signed_in_at: time::OffsetDateTime) -> String {
    use portal_domain::identity::SessionStore;
    let (config, clients) = served().await;
    clients
        .dynamo
        .put_item()
        .table_name(&config.tables.portal_logins)
        .set_item(Some(portal_platform::dynamo::to_item(login).unwrap()))
        .send()
        .await
        .unwrap();
    let policy = portal_domain::identity::sessions::SessionPolicy::default();
    let (token, mut record) = portal_domain::identity::sessions::open_session(login, signed_in_at, &policy);
    record.last_seen_at = time::OffsetDateTime::now_utc();
    portal_platform::identity::DynamoSessions::new(clients.dynamo, &config.tables).create(&record).await.unwrap();
    secrecy::ExposeSecret::expose_secret(&token).to_owned()
}

/// A demo session whose login proved its password at `signed_in_at` (still active now).
/// Its login is a copy of demo login `login_id` (its username, e-mail address and
/// password) under a fresh id (`<login_id>-<random>`), holding `partners`: tests that lock
/// or change the demo logins do not reach it. An unknown `login_id` gets a test login with
/// the demo password.
pub async fn demo_session_signed_in(
    login_id: &str,
    partners: &[&str],
    must_change_password: bool,
    signed_in_at: time::OffsetDateTime,
) -> String {
    use portal_domain::identity::LoginStore;
    let (config, clients) = served().await;
    let unique = format!("{login_id}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase());
    let demo = portal_platform::identity::DynamoLogins::new(clients.dynamo, config.tables.clone())
        .get(&portal_domain::ids::LoginId::parse(login_id).unwrap())
        .await
        .unwrap();
    let mut login = test_login(&unique, partners, must_change_password, demo_password_hash());
    if let Some(demo) = demo {
        (login.username, login.email, login.password_hash) = (demo.username, demo.email, demo.password_hash);
    }
    session_of(&login, signed_in_at).await
}

/// The argon2id hash of the demo logins' password, computed once per test binary.
fn demo_password_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        portal_domain::identity::credentials::hash_password(&secrecy::SecretString::from("Demo-Passwort-2026"))
    })
    .clone()
}

/// Mails the emulator has sent to `to`, oldest first (text bodies).
pub async fn mails_to(to: &str) -> Vec<String> {
    // The emulator's state dump can fail while other requests change it: retry.
    let mut data = Value::Null;
    for _ in 0..10 {
        let response = reqwest::get(format!("{EMULATOR}/moto-api/data.json")).await.unwrap();
        if let Ok(json) = response.json::<Value>().await {
            data = json;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["destinations"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|d| d == to)))
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs the password-resets worker over the served stack's reset queue (no event source runs
/// locally), as that function names itself, until `at_least` reset mails to `to` have
/// arrived: the reset mails of `to`. Tests running in parallel may take each other's
/// requests; each keeps draining until its own mail is there.
pub async fn reset_mails_to(to: &str, at_least: usize) -> Vec<String> {
    let resets = |mails: Vec<String>| -> Vec<String> {
        mails.into_iter().filter(|m| m.contains("Ihr Code zum Zurücksetzen:")).collect()
    };
    let env = test_env();
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let clients = Clients::from_sdk_config(&named(&sdk_config(EMULATOR).await, "password-resets"), None);
    let live = portal_platform::live::Live { config, clients };
    let access = &live.access();
    for _ in 0..40 {
        portal_platform::queue::drain(&live.clients.sqs, &live.config.password_reset_queue_url, |body| {
            portal_platform::identity::send_queued_reset(access, body)
        })
        .await
        .unwrap();
        let mails = resets(mails_to(to).await);
        if mails.len() >= at_least {
            return mails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    resets(mails_to(to).await)
}

/// An API Gateway (HTTP API, payload 2.0) event of a POST with a JSON body from `source_ip`,
/// for driving a function's handler in the test process (the local HTTP server gives every
/// request the source address 127.0.0.1).
pub fn apigw_post(path: &str, body: &Value, source_ip: &str) -> lambda_http::Request {
    let mut e: Value =
        serde_json::from_str(include_str!("../../functions/meter-readings/tests/fixtures/apigw-v2-post.json")).unwrap();
    e["rawPath"] = json!(path);
    e["routeKey"] = json!(format!("POST {path}"));
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["http"]["sourceIp"] = json!(source_ip);
    e["requestContext"]["routeKey"] = json!(format!("POST {path}"));
    e["body"] = json!(body.to_string());
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

/// Status, problem code (or `null`) and body of a handler's answer.
pub fn answer_of(response: lambda_http::Response<lambda_http::Body>) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let body: Value = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body["code"].as_str().map(str::to_owned), body)
}

/// The value after `label` in a mail text, up to the end of the line.
pub fn mail_field(text: &str, label: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(label)).map(|v| v.trim().to_owned())
}

pub fn s(item: &HashMap<String, AttributeValue>, key: &str) -> String {
    item.get(key).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// What the write path wrote for one customer and request type: transaction records,
/// activities and outbox entries. Equal before and after a refusal: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub records: usize,
    pub activities: usize,
    pub outbox: usize,
}

/// Items of a table of the served stack (the shared test stack), every page.
pub async fn stack_items(table_env: &str) -> Vec<HashMap<String, AttributeValue>> {
    let env = test_env();
    let clients = Clients::from_sdk_config(&sdk_config(EMULATOR).await, None);
    clients.dynamo.scan().table_name(&env[table_env]).into_paginator().items().send().try_collect().await.unwrap()
}

pub async fn ledger(record_table_env: &str, customer: &str, request_type: &str) -> Ledger {
    let (records, activities, outbox) =
        futures::join!(stack_items(record_table_env), stack_items("TABLE_ACTIVITIES"), stack_items("TABLE_OUTBOX"));
    let of = |i: &HashMap<String, AttributeValue>, k: &str, v: &str| s(i, k) == v;
    Ledger {
        records: records
            .iter()
            .filter(|i| of(i, "partnerNumber", customer) && of(i, "requestType", request_type))
            .count(),
        activities: activities
            .iter()
            .filter(|i| of(i, "partnerNumber", customer) && of(i, "requestType", request_type))
            .count(),
        outbox: outbox
            .iter()
            .filter(|i| of(i, "messageGroupId", customer) && of(i, "requestType", request_type))
            .count(),
    }
}

/// The downstream message of a request, from its outbox entry (which must be the only
/// one), checked against the event schema; and whether it reached the queue. A message that
/// waited behind an older one of the same customer (in flight in a parallel test) is sent
/// by the relay, as on AWS.
pub async fn message_of(request_id: &str, event_schema: &str) -> (Value, bool) {
    let entry = || async {
        let entries: Vec<_> =
            stack_items("TABLE_OUTBOX").await.into_iter().filter(|i| s(i, "requestId") == request_id).collect();
        assert_eq!(entries.len(), 1, "exactly one outbox entry for {request_id}");
        entries.into_iter().next().unwrap()
    };
    let mut found = entry().await;
    if s(&found, "status") != "SENT" {
        let env = test_env();
        let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
        let clients = Clients::from_sdk_config(&named(&sdk_config(EMULATOR).await, "relay"), None);
        Relay::new(clients.dynamo, clients.sqs, &config.tables, config.requests_queue_url)
            .run(time::Duration::ZERO)
            .await
            .unwrap();
        found = entry().await;
    }
    let message: Value = serde_json::from_str(&s(&found, "body")).unwrap();
    let schema = portal_platform::schemas::compile(event_schema).unwrap();
    let errors: Vec<String> = schema.iter_errors(&message).map(|e| format!("{} {}", e.instance_path(), e)).collect();
    assert!(errors.is_empty(), "{event_schema}: {errors:?}\n{message}");
    (message, s(&found, "status") == "SENT" && !s(&found, "messageId").is_empty())
}

/// One call with an optional idempotency key: status and JSON body.
pub async fn send(
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", api_url()));
    if let Some(body) = body {
        req = req.json(body);
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// The inbound sync wired to the served stack (the one the HTTP tests talk to).
pub async fn served_sync() -> (portal_platform::sync::InboundSync, Config, Clients) {
    let env = test_env();
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let sdk = sdk_config(EMULATOR).await;
    let sync = portal_platform::sync::InboundSync::new(&Clients::from_sdk_config(&named(&sdk, "sync"), None), &config);
    (sync, config, Clients::from_sdk_config(&sdk, None))
}

/// The served stack's inbox configuration is one setting for every customer: a test that
/// changes it (the CRM's `inboxConfiguration`) holds this for writing, the tests that read
/// an inbox hold it for reading.
pub static INBOX_CONFIGURATION: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// One test at a time sends to the served stack's inbound queue and polls it, so that each
/// sees the report of its own messages.
static SERVED_INBOUND_QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends CRM messages through the served stack's inbound queue and applies them as the local
/// poller does (`sync --poll`): what the whole round did.
pub async fn through_inbound_queue(messages: &[Value]) -> portal_platform::sync::SyncReport {
    let _queue = SERVED_INBOUND_QUEUE.lock().await;
    let (sync, config, clients) = served_sync().await;
    for message in messages {
        clients
            .sqs
            .send_message()
            .queue_url(&config.inbound_queue_url)
            .message_body(message.to_string())
            .send()
            .await
            .unwrap();
    }
    sync.poll(&config.inbound_queue_url).await.unwrap()
}
