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
        // until its own timeout (10 s in the template): each attempt is cut and retried, the
        // whole call bounded well below it, so the request is answered 503 with its id
        // (`store_error`, `http::serve`) instead of the gateway's bare 5xx.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(1))
            .operation_attempt_timeout(std::time::Duration::from_secs(3))
            .operation_timeout(std::time::Duration::from_secs(6))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .timeout_config(timeouts);
        if let Some(name) = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().and_then(|n| app_name(&n)) {
            loader = loader.app_name(name);
        }
        Self::from_sdk_config(&loader.load().await, None)
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

/// The function's name in the user agent of every call it makes (`app/<name>`): CloudTrail
/// shows which function made a call, and the IAM test (`scripts/iam_check.py`) holds each
/// call to that function's own policy. The SDK recommends at most 50 characters: a longer
/// (physical) name keeps its end, which is the unique part.
pub fn app_name(function_name: &str) -> Option<aws_config::AppName> {
    if !function_name.is_ascii() {
        return None;
    }
    let start = function_name.len().saturating_sub(50);
    aws_config::AppName::new(function_name[start..].to_owned()).ok()
}

/// The HTTPS client of every SDK client: rustls with ring, trusting the roots AWS service
/// endpoints chain to (`certs/aws-roots.pem`), or the bundle `SSL_CERT_FILE` names.
///
/// Parsing the system's whole trust store (about 140 roots, and by default every file of its
/// certificate directory too) took most of a function's start; five roots take almost
/// nothing (docs/performance.md).
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    let roots = std::env::var_os("SSL_CERT_FILE")
        .and_then(|path| std::fs::read(path).ok())
        .unwrap_or_else(|| AWS_ROOTS.as_bytes().to_vec());
    let store = TrustStore::empty().with_native_roots(false).with_pem_certificate(roots);
    match TlsContext::builder().with_trust_store(store).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        Err(_) => builder.build_https(),
    }
}

/// Amazon Trust Services' roots, to which every AWS service endpoint chains.
pub const AWS_ROOTS: &str = include_str!("../certs/aws-roots.pem");

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

/// Records every AWS call by operation name (and its JSON body), in order.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl CallCounter {
    /// The calls so far (`GetItem`, `Query`, …), and forgets them.
    pub fn take(&self) -> Vec<String> {
        self.take_with_bodies().into_iter().map(|(name, _)| name).collect()
    }

    /// The calls so far with their request bodies (empty for streamed bodies), and forgets them.
    pub fn take_with_bodies(&self) -> Vec<(String, String)> {
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
        let body = request.body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((name, body));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn a_function_names_itself_in_the_user_agent() {
        assert_eq!(super::app_name("meter-readings").unwrap().to_string(), "meter-readings");
        let physical = "evi-portal-production-MeterReadingsFunction-AbCdEfGh1234";
        assert_eq!(physical.len(), 56);
        assert_eq!(super::app_name(physical).unwrap().to_string(), &physical[6..]);
        assert!(super::app_name("bäckerei").is_none());
        assert!(super::app_name("").is_none());
    }

    #[test]
    fn the_aws_roots_are_five_certificates() {
        let roots: Vec<_> =
            CertificateDer::pem_slice_iter(super::AWS_ROOTS.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(roots.len(), 5);
    }
}
