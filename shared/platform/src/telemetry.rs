//! Structured logs for every function: JSON when Lambda asks for it
//! (`AWS_LAMBDA_LOG_FORMAT=JSON`), the level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
//!
//! Libraries that can print request payloads at TRACE (the Lambda runtime prints the raw
//! event, the SDK its HTTP bodies) are capped at DEBUG, so that no log level ever prints
//! a password, token or mail text.

use tracing_subscriber::EnvFilter;

const CAPS: &str = "lambda_runtime=debug,lambda_runtime_api_client=debug,lambda_http=debug,\
aws_smithy_runtime=debug,aws_smithy_http=debug,aws_smithy_runtime_api=debug,aws_sdk_dynamodb=debug,\
aws_sdk_sqs=debug,aws_sdk_sesv2=debug,aws_config=debug,hyper=info,hyper_util=info,h2=info,rustls=info";

/// The filter: the configured level and directives, except for capped libraries, which
/// get the caps above whatever was asked for them.
pub fn filter() -> EnvFilter {
    let configured = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_lowercase();
    let capped: Vec<&str> = CAPS.split(',').filter_map(|c| c.split_once('=')).map(|(target, _)| target).collect();
    let kept: Vec<&str> = configured
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !capped.iter().any(|t| d.starts_with(t)))
        .collect();
    EnvFilter::try_new(format!("{},{CAPS}", kept.join(","))).unwrap_or_else(|_| EnvFilter::new(format!("info,{CAPS}")))
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
            ("meter_readings", Level::TRACE) => tracing::enabled!(target: "meter_readings", Level::TRACE),
            ("meter_readings", Level::DEBUG) => tracing::enabled!(target: "meter_readings", Level::DEBUG),
            _ => unreachable!(),
        })
    }

    #[test]
    fn payload_printing_libraries_never_log_at_trace() {
        assert!(!enabled("trace", "lambda_runtime::layers", Level::TRACE));
        assert!(!enabled("lambda_runtime=trace,aws_smithy_runtime=trace", "lambda_runtime::layers", Level::TRACE));
        assert!(!enabled("trace", "aws_smithy_runtime::client", Level::TRACE));
        // Our own code follows the configured level.
        assert!(enabled("trace", "meter_readings", Level::TRACE));
        assert!(!enabled("info", "meter_readings", Level::DEBUG));
    }
}
