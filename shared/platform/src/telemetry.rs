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

/// The filter: the configured level, with the caps above.
pub fn filter() -> EnvFilter {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_lowercase();
    EnvFilter::try_new(format!("{level},{CAPS}")).unwrap_or_else(|_| EnvFilter::new(format!("info,{CAPS}")))
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
    #[test]
    fn payload_printing_libraries_stay_below_trace_whatever_the_level() {
        // SAFETY of the test: no other thread of this test binary reads RUST_LOG.
        unsafe { std::env::set_var("RUST_LOG", "trace") };
        let filter = super::filter().to_string();
        for capped in ["lambda_runtime=debug", "aws_smithy_runtime=debug", "aws_sdk_sesv2=debug"] {
            assert!(filter.contains(capped), "{filter}");
        }
    }
}
