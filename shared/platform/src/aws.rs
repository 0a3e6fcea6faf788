//! AWS SDK clients, built once per process and shared by every invocation.
//!
//! Endpoints come from the SDK's own settings (`AWS_ENDPOINT_URL`, `AWS_REGION`, …), so
//! the same binary talks to AWS, to LocalStack or to the local emulator.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Clients from the standard AWS configuration chain.
    pub async fn from_env() -> Self {
        // A call that hangs (a connection cut without a close) must not hold the function
        // until its own timeout: each attempt is cut and retried, the whole call bounded.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .operation_attempt_timeout(std::time::Duration::from_secs(10))
            .operation_timeout(std::time::Duration::from_secs(25))
            .build();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .timeout_config(timeouts)
            .load()
            .await;
        Self::from_sdk_config(&config, None)
    }

    /// Clients from a given configuration; `emulator_account` adds the emulator's
    /// account header so that each test gets its own tables and queues.
    pub fn from_sdk_config(config: &aws_config::SdkConfig, emulator_account: Option<&str>) -> Self {
        Self::with_counter(config, emulator_account, None)
    }

    /// Clients whose calls are also recorded in `counter` (cost per request, in tests and
    /// benchmarks).
    pub fn with_counter(
        config: &aws_config::SdkConfig,
        emulator_account: Option<&str>,
        counter: Option<&CallCounter>,
    ) -> Self {
        let mut dynamo = aws_sdk_dynamodb::config::Builder::from(config);
        let mut sqs = aws_sdk_sqs::config::Builder::from(config);
        let mut ses = aws_sdk_sesv2::config::Builder::from(config);
        // Emulators serve buckets by path, not by host name.
        let mut s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
        if let Some(account) = emulator_account {
            s3 = s3.interceptor(EmulatorAccount(account.to_owned()));
            dynamo = dynamo.interceptor(EmulatorAccount(account.to_owned()));
            sqs = sqs.interceptor(EmulatorAccount(account.to_owned()));
            ses = ses.interceptor(EmulatorAccount(account.to_owned()));
        }
        if let Some(counter) = counter {
            dynamo = dynamo.interceptor(counter.clone());
            sqs = sqs.interceptor(counter.clone());
            ses = ses.interceptor(counter.clone());
            s3 = s3.interceptor(counter.clone());
        }
        Self {
            dynamo: aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            ses: aws_sdk_sesv2::Client::from_conf(ses.build()),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
        }
    }
}

/// The HTTPS client of every SDK client: rustls with ring, trusting the system's CA bundle.
///
/// The bundle is one file (`SSL_CERT_FILE`, else Amazon Linux's or Debian's): the default
/// would also read every file of the certificate directory at start, which took 8 ms of a
/// 17 ms start here (docs/performance.md). Without a bundle file, the system's roots.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(CA_BUNDLES.iter().map(std::path::PathBuf::from))
        .find_map(|path| std::fs::read(path).ok());
    let context = bundle.and_then(|pem| {
        TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_native_roots(false).with_pem_certificate(pem))
            .build()
            .ok()
    });
    match context {
        Some(context) => builder.tls_context(context).build_https(),
        None => builder.build_https(),
    }
}

/// CA bundle files: Amazon Linux 2023 (Lambda's `provided.al2023`), then Debian and Ubuntu.
const CA_BUNDLES: [&str; 2] = ["/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt"];

/// Sends the AWS emulator's `x-moto-account-id` header: one isolated account per test.
#[derive(Debug, Clone)]
pub struct EmulatorAccount(pub String);

impl Intercept for EmulatorAccount {
    fn name(&self) -> &'static str {
        "EmulatorAccount"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

/// Records every AWS call by operation name, in order.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl CallCounter {
    /// The calls so far (`GetItem`, `Query`, …), and forgets them.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // JSON-protocol services name the operation in X-Amz-Target (`DynamoDB_20120810.GetItem`);
        // REST ones in the path.
        let request = context.request();
        let name = match request.headers().get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
            None => format!("{} {}", request.method(), request.uri()),
        };
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(name);
        Ok(())
    }
}
