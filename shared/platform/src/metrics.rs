//! CloudWatch metrics in the embedded metric format (EMF): one JSON line with an `_aws`
//! member on stdout per emission, which CloudWatch Logs turns into metrics. No call, no
//! latency, nothing to grant.
//!
//! Namespace [`NAMESPACE`]. Every value is recorded under three dimension sets: `Stack`
//! (what the alarms watch), `Stack, Function`, and `Stack, <detail>` where a metric has a
//! detail (`RequestType`, `Code`, `EntityType`). Dimension values are names from a fixed
//! set (function names, request types, problem codes, entity types), never customer data.
//! The line also carries the Lambda request id (`requestId`) and the gateway's
//! (`apiRequestId`) of the request it belongs to, as searchable properties.
//!
//! The metrics and their dimensions are listed in `docs/operations.md`.

use serde_json::{Map, Value, json};

/// The namespace of every metric the functions emit.
pub const NAMESPACE: &str = "EviPortal";

/// The ids of the request being handled (set by [`crate::http::serve`]).
#[derive(Debug, Clone, Default)]
pub struct RequestIds {
    /// Lambda's request id of the invocation.
    pub lambda: String,
    /// API Gateway's request id (`requestContext.requestId`), if the event came through it.
    pub api: Option<String>,
}

tokio::task_local! {
    static CURRENT: RequestIds;
}

/// Runs `future` with `ids` as the current request's ids (for the metric lines it emits).
pub async fn with_request<F: std::future::Future>(ids: RequestIds, future: F) -> F::Output {
    CURRENT.scope(ids, future).await
}

/// A unit CloudWatch knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
        }
    }
}

/// The dimension that breaks a metric down, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail<'a> {
    RequestType(&'a str),
    Code(&'a str),
    EntityType(&'a str),
}

impl Detail<'_> {
    fn name(&self) -> &'static str {
        match self {
            Detail::RequestType(_) => "RequestType",
            Detail::Code(_) => "Code",
            Detail::EntityType(_) => "EntityType",
        }
    }

    fn value(&self) -> &str {
        match self {
            Detail::RequestType(v) | Detail::Code(v) | Detail::EntityType(v) => v,
        }
    }
}

/// The stack the function belongs to (`PORTAL_STACK_NAME`, from the template) and the
/// function's short name, read once per process.
fn identity() -> &'static (String, String) {
    static IDENTITY: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(|| {
        let stack = std::env::var("PORTAL_STACK_NAME").unwrap_or_else(|_| "local".to_owned());
        let function = function(&stack);
        (stack, function)
    })
}

/// The function's short name (`meter-readings`): Lambda's function name without the stack
/// prefix, or the binary's name when run by hand (`cargo run -p relay`).
fn function(stack: &str) -> String {
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .or_else(|| std::env::current_exe().ok().and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())));
    let name = name.unwrap_or_else(|| "unknown".to_owned());
    name.strip_prefix(&format!("{stack}-")).map(str::to_owned).unwrap_or(name)
}

/// The EMF line for `values` (name, value, unit) with an optional detail, at `timestamp_ms`.
pub fn line(values: &[(&str, f64, Unit)], detail: Option<Detail<'_>>, timestamp_ms: i128) -> String {
    let (stack, function) = identity();
    let mut dimensions = vec![json!(["Stack"]), json!(["Stack", "Function"])];
    let mut root = Map::new();
    root.insert("Stack".into(), json!(stack));
    root.insert("Function".into(), json!(function));
    if let Some(detail) = detail {
        dimensions.push(json!(["Stack", detail.name()]));
        root.insert(detail.name().into(), json!(detail.value()));
    }
    let metrics: Vec<Value> =
        values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()})).collect();
    for (name, value, _) in values {
        root.insert((*name).to_owned(), json!(value));
    }
    let _ = CURRENT.try_with(|ids| {
        root.insert("requestId".into(), json!(ids.lambda));
        if let Some(api) = &ids.api {
            root.insert("apiRequestId".into(), json!(api));
        }
    });
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": dimensions, "Metrics": metrics }],
        }),
    );
    Value::Object(root).to_string()
}

/// Emits `values` as one EMF line on stdout.
pub fn emit(values: &[(&str, f64, Unit)], detail: Option<Detail<'_>>) {
    if values.is_empty() {
        return;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    // One write of the whole line, so that lines of concurrent requests never interleave.
    let text = format!("{}\n", line(values, detail, now));
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
}

/// Counts one occurrence of `metric`.
pub fn count(metric: &str, detail: Option<Detail<'_>>) {
    emit(&[(metric, 1.0, Unit::Count)], detail);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_line_is_emf_with_the_stack_function_and_detail_dimensions() {
        let v = parse(&line(&[("RequestsCommitted", 1.0, Unit::Count)], Some(Detail::RequestType("MESSAGE")), 42));
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 42);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Stack"], ["Stack", "Function"], ["Stack", "RequestType"]]));
        assert_eq!(directive["Metrics"], json!([{"Name": "RequestsCommitted", "Unit": "Count"}]));
        assert_eq!(v["RequestsCommitted"], 1.0);
        assert_eq!(v["RequestType"], "MESSAGE");
        // Every dimension named in the directive has its value at the top level.
        for set in directive["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                assert!(v[name.as_str().unwrap()].is_string(), "{name} missing in {v}");
            }
        }
        assert!(v.get("requestId").is_none(), "no request outside a request");
    }

    #[tokio::test]
    async fn a_line_inside_a_request_carries_both_request_ids() {
        let ids = RequestIds { lambda: "lambda-1".into(), api: Some("api-1".into()) };
        let text =
            with_request(ids, async { line(&[("Refusals", 1.0, Unit::Count)], Some(Detail::Code("X")), 1) }).await;
        let v = parse(&text);
        assert_eq!((v["requestId"].as_str(), v["apiRequestId"].as_str()), (Some("lambda-1"), Some("api-1")));
    }

    #[test]
    fn several_values_share_one_line_and_seconds_have_their_unit() {
        let v = parse(&line(
            &[("OutboxPending", 2.0, Unit::Count), ("OutboxOldestPendingAgeSeconds", 61.0, Unit::Seconds)],
            None,
            1,
        ));
        let metrics = &v["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(metrics[1], json!({"Name": "OutboxOldestPendingAgeSeconds", "Unit": "Seconds"}));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"].as_array().unwrap().len(), 2);
        assert_eq!((v["OutboxPending"].as_f64(), v["OutboxOldestPendingAgeSeconds"].as_f64()), (Some(2.0), Some(61.0)));
    }
}
