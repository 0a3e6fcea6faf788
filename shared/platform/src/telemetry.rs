//! Structured logs for every function: JSON when Lambda asks for it
//! (`AWS_LAMBDA_LOG_FORMAT=JSON`), the level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
//!
//! Libraries that can print request payloads at TRACE (the Lambda runtime prints the raw
//! event, the SDK its HTTP bodies) are capped at DEBUG, so that no log level ever prints
//! a password, token or mail text.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Libraries whose logs are capped, and the most they may log.
const CAPS: &[(&str, LevelFilter)] = &[
    ("lambda_runtime", LevelFilter::DEBUG),
    ("lambda_runtime_api_client", LevelFilter::DEBUG),
    ("lambda_http", LevelFilter::DEBUG),
    ("aws_smithy_runtime", LevelFilter::DEBUG),
    ("aws_smithy_http", LevelFilter::DEBUG),
    ("aws_smithy_runtime_api", LevelFilter::DEBUG),
    ("aws_sdk_dynamodb", LevelFilter::DEBUG),
    ("aws_sdk_sqs", LevelFilter::DEBUG),
    ("aws_sdk_sesv2", LevelFilter::DEBUG),
    ("aws_sdk_s3", LevelFilter::DEBUG),
    ("aws_config", LevelFilter::DEBUG),
    ("hyper", LevelFilter::INFO),
    ("hyper_util", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("rustls", LevelFilter::INFO),
];

/// The filter: the configured level and directives; capped libraries follow the configured
/// default level but never go beyond their cap, whatever was asked for them.
pub fn filter() -> EnvFilter {
    let configured = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_lowercase();
    let is_capped = |target: &str| CAPS.iter().any(|(c, _)| target == *c || target.starts_with(&format!("{c}::")));
    let directives: Vec<&str> = configured
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !is_capped(d.split_once('=').map_or(*d, |(target, _)| target)))
        .collect();
    let default = directives.iter().rev().find_map(|d| d.parse::<LevelFilter>().ok()).unwrap_or(LevelFilter::INFO);
    let caps: Vec<String> = CAPS.iter().map(|(target, most)| format!("{target}={}", default.min(*most))).collect();
    EnvFilter::try_new(format!("{},{}", directives.join(","), caps.join(",")))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{}", caps.join(","))))
}

pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter()).with_target(false).without_time().with_ansi(ansi);
    // Ignored if a subscriber is already set (tests).
    let _ = if json { builder.json().with_current_span(true).try_init() } else { builder.try_init() };
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    fn enabled(rust_log: &str, target: &'static str, level: Level) -> bool {
        // SAFETY: the tests of this module are the only readers of RUST_LOG in this binary.
        unsafe { std::env::set_var("RUST_LOG", rust_log) };
        let subscriber = tracing_subscriber::registry().with(super::filter());
        tracing::subscriber::with_default(subscriber, || match (target, level) {
            ("lambda_runtime::layers", Level::TRACE) => {
                tracing::enabled!(target: "lambda_runtime::layers", Level::TRACE)
            }
            ("aws_smithy_runtime::client", Level::TRACE) => {
                tracing::enabled!(target: "aws_smithy_runtime::client", Level::TRACE)
            }
            ("aws_smithy_runtime::client", Level::DEBUG) => {
                tracing::enabled!(target: "aws_smithy_runtime::client", Level::DEBUG)
            }
            ("meter_readings", Level::TRACE) => tracing::enabled!(target: "meter_readings", Level::TRACE),
            ("meter_readings", Level::DEBUG) => tracing::enabled!(target: "meter_readings", Level::DEBUG),
            _ => unreachable!(),
        })
    }

    #[test]
    fn payload_printing_libraries_never_log_at_trace_and_follow_the_level_below() {
        assert!(!enabled("trace", "lambda_runtime::layers", Level::TRACE));
        assert!(!enabled("lambda_runtime=trace,aws_smithy_runtime=trace", "lambda_runtime::layers", Level::TRACE));
        assert!(!enabled("trace", "aws_smithy_runtime::client", Level::TRACE));
        // Our own code follows the configured level.
        assert!(enabled("trace", "meter_readings", Level::TRACE));
        assert!(!enabled("info", "meter_readings", Level::DEBUG));
        // Capped libraries follow the configured level below their cap (one test: the cases
        // share RUST_LOG). At INFO the SDK's per-call DEBUG lines stay off (they cost time on every call).
        assert!(!enabled("info", "aws_smithy_runtime::client", Level::DEBUG));
        assert!(!enabled("info,aws_smithy_runtime=trace", "aws_smithy_runtime::client", Level::DEBUG));
        assert!(enabled("debug", "aws_smithy_runtime::client", Level::DEBUG));
        assert!(enabled("trace", "aws_smithy_runtime::client", Level::DEBUG));
    }
}
