//! The HTTP edge every function shares: one error type mapped once to RFC 9457 problem
//! details, request bodies read with a size limit, validated against their JSON Schema
//! and parsed into typed requests, and JSON answers.

use http::{HeaderValue, StatusCode, header};
use jsonschema::Validator;
use lambda_http::{Body, Request, RequestExt, Response};
use portal_domain::clock::Clock;
use portal_domain::identity::sessions::{Access, AuthError, Authenticator, Caller};
use portal_domain::identity::{LoginStore, SessionStore};
use portal_domain::ids::IdempotencyKey;
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Largest request body the JSON endpoints accept.
pub const MAX_JSON_BODY: usize = 16 * 1024;

/// One field-level finding in a 400 or 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub code: String,
    pub message: String,
}

/// An answer other than success: status, stable code, human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
    /// Further members of the problem (RFC 9457 extensions), e.g. a reading's allowed ranges.
    pub extensions: serde_json::Map<String, Value>,
    /// The methods for an `Allow` header (405).
    pub allow: Option<Box<str>>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            extensions: serde_json::Map::new(),
            allow: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: i64) -> Self {
        self.retry_after = Some(u32::try_from(seconds.max(1)).unwrap_or(u32::MAX));
        self
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "There is no such resource.")
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "The request could not be completed. Quote the request id when you contact us.",
        )
    }

    /// Logs an unexpected error with the request id and answers the generic 500, or 503
    /// when an AWS service did not answer in time.
    pub fn unexpected(request_id: &str, error: &dyn std::fmt::Display) -> Self {
        let error = error.to_string();
        if error.contains(crate::dynamo::UNAVAILABLE) {
            tracing::warn!(request_id, error = %error, "service unavailable");
            return Self::unavailable();
        }
        tracing::error!(request_id, error = %error, "unexpected error");
        Self::internal()
    }

    /// 503: a service behind the function did not answer in time; nothing to fix but to
    /// try again shortly. A write that did commit is answered again under its
    /// `Idempotency-Key`.
    pub fn unavailable() -> Self {
        let mut problem = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "The service is busy or a system behind it did not answer in time. Try again shortly \
             (with the same Idempotency-Key for a change).",
        );
        problem.retry_after = Some(UNAVAILABLE_RETRY_AFTER_SECONDS);
        problem
    }

    pub fn to_response(&self, request_id: &str) -> Response<Body> {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let mut body = json!({
            "type": format!("urn:evi-portal:problem:{}", self.code.to_ascii_lowercase().replace('_', "-")),
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
            "requestId": request_id,
        });
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        for (key, value) in &self.extensions {
            body[key.as_str()] = value.clone();
        }
        let mut response = respond(self.status, "application/problem+json", &body, request_id);
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let Some(allow) = &self.allow
            && let Ok(value) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: &impl Serialize, request_id: &str) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &impl Serialize, request_id: &str) -> Response<Body> {
    respond(status, "application/json", body, request_id)
}

/// Answers several capabilities share, each with one wording.
pub mod problems {
    use super::{FieldError, Problem};
    use http::StatusCode;
    use portal_domain::changes::ChangeError;
    use portal_domain::plausibility::{Field, RuleViolation};
    use serde_json::{Value, json};

    pub fn customer_not_found() -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "CUSTOMER_NOT_FOUND", "No customer matches this customer number and name.")
    }

    /// The deployment asks for a further number from the bill (`RegistrationProof=METER_OR_ACCOUNT`).
    pub fn bill_number_required() -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "BILL_NUMBER_REQUIRED",
            "Also give a meter number or the contract account number from your bill (meterNumber or accountNumber).",
        )
    }

    /// A failure budget is used up (the customer number's, the source address's or the
    /// deployment's): try again after `Retry-After` seconds, when the hour's window ends.
    pub fn too_many_attempts(retry_after: time::Duration) -> Problem {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_ATTEMPTS",
            "Too many failed attempts. Try again when the time in Retry-After has passed.",
        )
        .with_retry_after(retry_after.whole_seconds().max(1))
    }

    pub fn idempotency_key_reused() -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "This Idempotency-Key was used for a different request.",
        )
    }

    pub fn already_registered(detail: &str) -> Problem {
        Problem::new(StatusCode::CONFLICT, "ALREADY_REGISTERED", detail)
    }

    pub fn concurrent_update(detail: &str) -> Problem {
        Problem::new(StatusCode::CONFLICT, "CONCURRENT_UPDATE", detail)
    }

    /// 400 for a query parameter that does not parse.
    pub fn invalid_query(parameter: &str, message: &str) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            format!("Invalid query parameter {parameter}: {message}"),
        )
        .with_errors(vec![FieldError {
            pointer: format!("?{parameter}"),
            code: "format".into(),
            message: message.into(),
        }])
    }

    pub fn request_in_progress() -> Problem {
        Problem::new(
            StatusCode::CONFLICT,
            "REQUEST_IN_PROGRESS",
            "A request with this Idempotency-Key is still being processed. Retry in a moment.",
        )
    }

    /// 422 for a reading that breaks the plausibility rules; `prefix` locates the reading
    /// in the request (`""`, or `/readings/0` inside a termination).
    pub fn implausible(violations: &[RuleViolation], prefix: &str) -> Problem {
        let errors: Vec<FieldError> = violations
            .iter()
            .map(|v| FieldError {
                pointer: match v.field() {
                    Field::ReadingDate => format!("{prefix}/readingDate"),
                    Field::Values => format!("{prefix}/values"),
                    Field::Value(i) => format!("{prefix}/values/{i}/value"),
                },
                code: v.code().to_owned(),
                message: v.message(),
            })
            .collect();
        // The values each register may show on the reading's date, for the customer to check.
        let ranges: Vec<Value> = violations
            .iter()
            .filter_map(|v| match v {
                RuleViolation::OutsideRange { register, range, .. } => {
                    Some(json!({ "register": register, "min": range.min, "max": range.max }))
                }
                _ => None,
            })
            .collect();
        match violations.first() {
            Some(first) => {
                let mut problem =
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, first.code(), first.message()).with_errors(errors);
                if !ranges.is_empty() {
                    problem.extensions.insert("allowedRanges".into(), Value::Array(ranges));
                }
                problem
            }
            None => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "READING_IMPLAUSIBLE", "The reading is not plausible.")
            }
        }
    }

    /// The documented answer for every refusal of a self-service change.
    pub fn change(error: ChangeError, request_id: &str) -> Problem {
        match error {
            ChangeError::NotFound => Problem::not_found(),
            ChangeError::Invalid { pointer, code, message } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.clone()).with_errors(vec![FieldError {
                    pointer,
                    code: code.to_owned(),
                    message,
                }])
            }
            ChangeError::NotPossible { code, message } => Problem::new(StatusCode::CONFLICT, code, message),
            ChangeError::Implausible(violations) => implausible(&violations, ""),
            ChangeError::ImplausibleAt { prefix, violations } => implausible(&violations, &prefix),
            ChangeError::ReauthenticationRequired => Problem::new(
                StatusCode::FORBIDDEN,
                "REAUTHENTICATION_REQUIRED",
                "Confirm this change with your current password (currentPassword).",
            ),
            ChangeError::CurrentPasswordWrong => {
                Problem::new(StatusCode::FORBIDDEN, "CURRENT_PASSWORD_WRONG", "The current password is wrong.")
            }
            ChangeError::TooManyAttempts { retry_after } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_ATTEMPTS",
                "Too many attempts. Wait before the next one (Retry-After).",
            )
            .with_retry_after(retry_after.whole_seconds()),
            ChangeError::IdempotencyKeyReused => idempotency_key_reused(),
            ChangeError::RequestInProgress => request_in_progress(),
            ChangeError::Conflict => concurrent_update("The data changed at the same time. Reload and retry."),
            ChangeError::Store(e) => Problem::unexpected(request_id, &e),
        }
    }
}

/// Runs a function's handler for one request: the request ids, a log span with them and the
/// route template (never the raw path: it holds customer, contract, meter and document
/// numbers), the route, and one answer (problem details for a refusal) with one log line
/// and its metrics.
pub async fn serve<F, Fut>(req: Request, handler: F) -> Result<Response<Body>, std::convert::Infallible>
where
    F: FnOnce(Request, http::Method, String, String) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, Problem>>,
{
    use tracing::Instrument;
    let id = request_id(&req);
    let api_id = api_request_id(&req);
    let (method, path) = route(&req);
    let template = route_template(&req, &method, &path);
    let budget = req.lambda_context_ref().and_then(|c| time_left(c.deadline(), std::time::SystemTime::now()));
    let span = tracing::info_span!(
        "handle",
        request_id = %id,
        api_request_id = api_id.as_deref().unwrap_or("-"),
        route = %template,
    );
    let ids = crate::metrics::RequestIds { lambda: id.clone(), api: api_id };
    let handle = async move {
        let handled = handler(req, method, path, id.clone());
        let answer = match budget {
            Some(budget) => tokio::time::timeout(budget, handled).await.unwrap_or_else(|_| {
                tracing::warn!("the request ran out of time");
                Err(Problem::unavailable())
            }),
            None => handled.await,
        };
        Ok(finish(answer, &id))
    };
    crate::metrics::with_request(ids, handle.instrument(span)).await
}

/// One request as a handler sees it: the route it matched (its operation), its path
/// parameters, and the extractors every handler uses (the caller, a path id, the checked
/// body, the idempotency key), each answering its own refusal.
pub struct Call {
    pub req: Request,
    /// The invocation's request id, for answers and logs.
    pub id: String,
    pub route: &'static crate::routes::Route,
    params: crate::routes::PathParams,
}

impl Call {
    pub fn operation(&self) -> crate::routes::Operation {
        self.route.operation
    }

    /// The authenticated caller at this access level (401, 403 otherwise).
    pub async fn caller<S: SessionStore, G: LoginStore, C: Clock>(
        &self,
        auth: &Authenticator<S, G, C>,
        access: Access,
    ) -> Result<Caller, Problem> {
        authenticate(auth, &self.req, access, &self.id).await
    }

    /// The path parameter `name` parsed into its domain type (404 if it does not parse).
    pub fn path<T, E>(&self, name: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, Problem> {
        self.params.get(name, parse)
    }

    /// The body, schema-validated and typed, with the parsed JSON ([`read_json`]).
    pub fn json<T: DeserializeOwned>(&self, schema: &Validator) -> Result<(T, Value), Problem> {
        read_json(&self.req, schema)
    }

    /// The `Idempotency-Key` (checked first, 400 if malformed), then the body: the typed
    /// body and the key with the body's fingerprint, as a write takes them.
    pub fn keyed_json<T: DeserializeOwned>(
        &self,
        schema: &Validator,
    ) -> Result<(T, Option<(IdempotencyKey, String)>), Problem> {
        self.keyed_json_by(schema, portal_domain::requests::fingerprint)
    }

    /// [`Call::keyed_json`] with another fingerprint (one that leaves out the password a
    /// change is confirmed with).
    pub fn keyed_json_by<T: DeserializeOwned>(
        &self,
        schema: &Validator,
        fingerprint: fn(&Value) -> String,
    ) -> Result<(T, Option<(IdempotencyKey, String)>), Problem> {
        let key = idempotency_key(&self.req)?;
        let (body, raw) = read_json(&self.req, schema)?;
        Ok((body, key.map(|k| (k, fingerprint(&raw)))))
    }

    /// A JSON answer with this status.
    pub fn answer(&self, status: StatusCode, body: &impl Serialize) -> Result<Response<Body>, Problem> {
        Ok(json_response(status, body, &self.id))
    }

    /// Maps an unexpected error (logged with the request id) to 500, or 503 when a service
    /// did not answer in time.
    pub fn unexpected<E: std::fmt::Display>(&self) -> impl Fn(E) -> Problem + '_ {
        move |e| Problem::unexpected(&self.id, &e)
    }
}

/// [`serve`] for a function of the API: the request's route from the one route table
/// ([`crate::routes`]), 404 or 405 for none, and the handler with the [`Call`].
pub async fn serve_routes<F, Fut>(
    req: Request,
    function: &'static str,
    handler: F,
) -> Result<Response<Body>, std::convert::Infallible>
where
    F: FnOnce(Call) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, Problem>> + Send,
{
    serve(req, |req, method, path, id| async move {
        let (route, params) = crate::routes::find(&method, &path)?;
        if route.function != function {
            return Err(Problem::not_found());
        }
        // Boxed: one allocation per request keeps the nested future types of every
        // function's handlers within the compiler's layout depth.
        let handled: std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Problem>> + Send + '_>> =
            Box::pin(handler(Call { req, id, route, params }));
        handled.await
    })
    .await
}

/// API Gateway's request id of the request (`requestContext.requestId`), which its access
/// log holds too.
pub fn api_request_id(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        lambda_http::request::RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The route as API Gateway declares it (`GET /v1/contracts/{contractNumber}`), for logs:
/// the gateway's `routeKey`, or, where there is none (a local server), the path with every
/// segment that holds a digit masked.
pub fn route_template(req: &Request, method: &http::Method, path: &str) -> String {
    let key = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    match key {
        Some(key) if key.contains(' ') && key.contains('/') => key,
        _ => format!("{method} {}", mask_path(path)),
    }
}

/// `/v1/contracts/300000001` → `/v1/contracts/*`.
fn mask_path(path: &str) -> String {
    path.split('/')
        .map(|segment| if segment.chars().any(|c| c.is_ascii_digit()) && segment != "v1" { "*" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// Seconds a client should wait before retrying a 503.
const UNAVAILABLE_RETRY_AFTER_SECONDS: u32 = 1;
/// Kept back from the function's timeout to answer a request that ran out of time with a
/// problem (503 with the request id) instead of the gateway's bare 5xx.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(750);

/// How long a handler may run: up to the invocation's deadline less the margin to answer.
fn time_left(deadline: std::time::SystemTime, now: std::time::SystemTime) -> Option<std::time::Duration> {
    let left = deadline.duration_since(now).ok()?;
    Some(left.saturating_sub(ANSWER_MARGIN))
}

/// The response for a handler's outcome, with one log line per request (status only:
/// bodies are never logged).
pub fn finish(answer: Result<Response<Body>, Problem>, request_id: &str) -> Response<Body> {
    use crate::metrics::{Detail, count};
    let response = answer.unwrap_or_else(|problem| {
        let code = Some(Detail::Code(problem.code));
        if problem.status.is_server_error() {
            count("ServerErrors", code);
        } else {
            count("Refusals", code);
        }
        // Attempt limits, login lockouts and throttled senders.
        if problem.status == StatusCode::TOO_MANY_REQUESTS {
            count("LimitsHit", code);
        }
        problem.to_response(request_id)
    });
    tracing::info!(status = response.status().as_u16(), "answered");
    response
}

/// 204 No Content.
pub fn no_content(request_id: &str) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// The invocation's request id (Lambda's, which is also in every log line).
pub fn request_id(req: &Request) -> String {
    req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_else(|| "local".to_owned())
}

/// The route a request asks for: method and path, without stage prefix or query.
pub fn route(req: &Request) -> (http::Method, String) {
    (req.method().clone(), req.raw_http_path().trim_end_matches('/').to_owned())
}

/// Where the request came from, as API Gateway saw it (`requestContext.http.sourceIp`):
/// the unit of the per-address budgets, IPv6 by its /64.
pub fn source_address(req: &Request) -> portal_domain::budgets::SourceAddress {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            portal_domain::budgets::SourceAddress::of(ctx.http.source_ip.as_deref().unwrap_or_default())
        }
        _ => portal_domain::budgets::SourceAddress::default(),
    }
}

/// The body of every identification at registration and when adding a customer number
/// (`customer-identification.request.schema.json`): customer number and name, and where
/// the deployment asks for it a meter or contract account number from the bill.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentificationBody {
    pub customer_number: portal_domain::ids::CustomerNumber,
    pub last_name: String,
    pub meter_number: Option<portal_domain::ids::MeterNumber>,
    pub account_number: Option<portal_domain::ids::AccountNumber>,
}

impl IdentificationBody {
    /// The identification the request makes; a meter number is used before an account number.
    pub fn identification(self, req: &Request) -> portal_domain::identification::Identification {
        use portal_domain::identification::{BillNumber, Identification};
        let bill = self.meter_number.map(BillNumber::Meter).or(self.account_number.map(BillNumber::Account));
        Identification::new(self.customer_number, self.last_name, source_address(req)).with_bill(bill)
    }
}

/// The bearer token of the `Authorization` header, if any.
pub fn bearer_token(req: &Request) -> Option<SecretString> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then(|| SecretString::from(token.to_owned()))
}

/// Runs the one authentication step for a request.
pub async fn authenticate<S: SessionStore, G: LoginStore, C: Clock>(
    auth: &Authenticator<S, G, C>,
    req: &Request,
    access: Access,
    request_id: &str,
) -> Result<Caller, Problem> {
    auth.authenticate(bearer_token(req).as_ref(), access).await.map_err(|e| match e {
        AuthError::Missing | AuthError::Invalid => Problem::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Log in: the session is missing, has ended or has expired.",
        ),
        AuthError::PasswordChangeRequired => Problem::new(
            StatusCode::FORBIDDEN,
            "PASSWORD_CHANGE_REQUIRED",
            "Change the initial password first (PUT /v1/me/password).",
        ),
        AuthError::Store(e) => Problem::unexpected(request_id, &e),
    })
}

/// The optional `Idempotency-Key` header.
pub fn idempotency_key(req: &Request) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(raw) = req.headers().get("idempotency-key") else { return Ok(None) };
    let text = raw.to_str().map_err(|_| invalid_key())?;
    IdempotencyKey::parse(text).map(Some).map_err(|_| invalid_key())
}

fn invalid_key() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "INVALID_IDEMPOTENCY_KEY",
        "The Idempotency-Key header must hold 1 to 128 visible ASCII characters.",
    )
}

/// Fields whose text may span lines (a message's text): line breaks and tabs are allowed
/// there, no other control character.
const MULTILINE_FIELDS: &[&str] = &["text"];
/// Fields that never travel downstream nor show anywhere (hashed or compared only).
const SECRET_FIELDS: &[&str] = &["password", "currentPassword", "newPassword"];

/// Every string of a request body holding a control character (CR, LF, NUL, ESC, …), by its
/// pointer: such text would travel downstream into the CRM, mails and headers.
fn control_characters(value: &Value, pointer: &str) -> Vec<FieldError> {
    let field = pointer.rsplit('/').next().unwrap_or_default();
    match value {
        Value::String(text) if !SECRET_FIELDS.contains(&field) => {
            let multiline = MULTILINE_FIELDS.contains(&field);
            let unclean = text.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')));
            if unclean {
                vec![FieldError {
                    pointer: pointer.to_owned(),
                    code: "controlCharacter".to_owned(),
                    message: "holds a control character".to_owned(),
                }]
            } else {
                Vec::new()
            }
        }
        Value::Array(items) => {
            items.iter().enumerate().flat_map(|(i, v)| control_characters(v, &format!("{pointer}/{i}"))).collect()
        }
        Value::Object(fields) => fields
            .iter()
            .flat_map(|(k, v)| control_characters(v, &format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"))))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads a JSON body: size limit, media type, syntax, schema, clean text, then typed
/// parsing. Returns the typed request and the parsed JSON (for fingerprints).
pub fn read_json<T: DeserializeOwned>(req: &Request, schema: &Validator) -> Result<(T, Value), Problem> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !(ct.starts_with("application/json") || ct.contains("+json")) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "Send the request body as application/json.",
            ));
        }
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_JSON_BODY {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("The request body may hold at most {MAX_JSON_BODY} bytes."),
        ));
    }
    if bytes.is_empty() {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", "The request needs a JSON body."));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
            format!("The body is not valid JSON (line {}, column {}).", e.line(), e.column()),
        )
    })?;
    let errors: Vec<FieldError> = schema
        .iter_errors(&value)
        .take(20)
        .map(|e| {
            let mut pointer = e.instance_path().as_str().to_owned();
            if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
                pointer = format!("{pointer}/{}", property.as_str().unwrap_or_default());
            }
            // `masked` leaves the offending value out: it may be personal data.
            FieldError { pointer, code: e.kind().keyword().to_owned(), message: e.masked().to_string() }
        })
        .collect();
    if !errors.is_empty() {
        return Err(validation_failed(errors));
    }
    let unclean = control_characters(&value, "");
    if !unclean.is_empty() {
        return Err(Problem {
            errors: unclean,
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "CONTROL_CHARACTERS",
                "Text may not hold control characters (line breaks only in a message's text).",
            )
        });
    }
    let typed = serde_path_to_error::deserialize(&value).map_err(|e| {
        let pointer = format!("/{}", e.path().to_string().replace(['.', '['], "/").replace(']', ""));
        validation_failed(vec![FieldError { pointer, code: "format".to_owned(), message: e.inner().to_string() }])
    })?;
    Ok((typed, value))
}

fn validation_failed(errors: Vec<FieldError>) -> Problem {
    let detail = match errors.first() {
        Some(first) if errors.len() == 1 => format!("Invalid field {}: {}", first.pointer, first.message),
        _ => format!("{} fields are invalid.", errors.len()),
    };
    Problem::new(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", detail).with_errors(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(deadline_in: std::time::Duration) -> Request {
        let mut context = lambda_http::Context::default();
        context.request_id = "req-1".to_owned();
        let deadline = std::time::SystemTime::now() + deadline_in;
        context.deadline = deadline.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        Request::default().with_lambda_context(context)
    }

    #[tokio::test]
    async fn a_request_that_runs_out_of_time_is_answered_503_with_its_id() {
        let slow = |_, _, _, _| async {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            Ok(no_content("never"))
        };
        let started = std::time::Instant::now();
        let response = serve(invocation(std::time::Duration::from_millis(1000)), slow).await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "answered before the deadline");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let Body::Text(text) = response.body() else { panic!("a text body") };
        let body: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!((body["code"].as_str(), body["requestId"].as_str()), (Some("SERVICE_UNAVAILABLE"), Some("req-1")));
        // Within the time, the handler's own answer.
        let quick = |_, _, _, id: String| async move { Ok(no_content(&id)) };
        let response = serve(invocation(std::time::Duration::from_millis(1000)), quick).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn logs_name_the_route_template_never_the_ids_in_the_path() {
        let req = Request::default();
        let t = route_template(&req, &http::Method::GET, "/v1/contracts/300000001");
        assert_eq!(t, "GET /v1/contracts/*");
        let t = route_template(&req, &http::Method::PUT, "/v1/contract-accounts/800000003/bank-details");
        assert_eq!(t, "PUT /v1/contract-accounts/*/bank-details");
        assert_eq!(
            route_template(&req, &http::Method::GET, "/v1/code-lists/salutations"),
            "GET /v1/code-lists/salutations"
        );
        // Behind API Gateway, its route key.
        let mut ctx = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
        ctx.route_key = Some("GET /v1/contracts/{contractNumber}".into());
        ctx.request_id = Some("gw-1".into());
        let req = Request::default().with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(ctx));
        assert_eq!(
            route_template(&req, &http::Method::GET, "/v1/contracts/300000001"),
            "GET /v1/contracts/{contractNumber}"
        );
        assert_eq!(api_request_id(&req).as_deref(), Some("gw-1"));
    }

    #[test]
    fn the_budget_keeps_a_margin_to_answer() {
        let now = std::time::SystemTime::now();
        let second = std::time::Duration::from_secs(1);
        assert_eq!(time_left(now + 10 * second, now), Some(10 * second - ANSWER_MARGIN));
        assert_eq!(time_left(now + ANSWER_MARGIN / 2, now), Some(std::time::Duration::ZERO));
        assert_eq!(time_left(now - second, now), None, "no deadline (a local call) sets no budget");
    }

    #[test]
    fn a_service_that_did_not_answer_is_503_and_anything_else_500() {
        let timed_out = format!("GetItem: {}: request has timed out", crate::dynamo::UNAVAILABLE);
        let p = Problem::unexpected("r", &timed_out);
        assert_eq!(
            (p.status, p.code, p.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", Some(1))
        );
        let p = Problem::unexpected("r", &"GetItem: service error: ValidationException");
        assert_eq!((p.status, p.code, p.retry_after), (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", None));
    }

    fn schema() -> Validator {
        crate::schemas::compile("anonymous-meter-reading-lookup.request.schema.json").unwrap()
    }

    fn request(body: &str) -> Request {
        let mut req = Request::new(Body::Text(body.to_owned()));
        req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        req
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Lookup {
        #[allow(dead_code)]
        customer_number: portal_domain::ids::CustomerNumber,
    }

    #[test]
    fn control_characters_are_refused_by_pointer_line_breaks_only_in_a_text() {
        let body = serde_json::json!({
            "subject": "Hallo\r\nBcc: x@example.org",
            "text": "Zeile 1\r\nZeile 2\tEnde",
            "address": {"street": "Haupt\u{0}straße", "city": "Köln"},
            "values": [{"register": "HT"}, {"register": "N\u{1b}T"}],
            "newPassword": "tab\tin a password is the customer's business",
        });
        let found: Vec<String> = control_characters(&body, "").into_iter().map(|e| e.pointer).collect();
        assert_eq!(found, ["/address/street", "/subject", "/values/1/register"]);
        let bell = serde_json::json!({"text": "ding\u{7}"});
        assert_eq!(control_characters(&bell, "")[0].pointer, "/text", "a text holds line breaks, nothing else");
        assert!(control_characters(&serde_json::json!({"name": "Bäckerei Schmidt GmbH & Co. KG"}), "").is_empty());
    }

    #[test]
    fn a_missing_field_is_named_by_its_pointer() {
        let p = read_json::<Lookup>(&request(r#"{"customerNumber":"1000001"}"#), &schema()).unwrap_err();
        assert_eq!(p.code, "VALIDATION_FAILED");
        assert_eq!(p.errors[0].pointer, "/lastName");
        assert_eq!(p.errors[0].code, "required");
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_refused_without_echoing_values() {
        let p = read_json::<Lookup>(&request(r#"{"customerNumber":"secret-42","lastName":"x","extra":1}"#), &schema())
            .unwrap_err();
        let pointers: Vec<&str> = p.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/customerNumber"), "{pointers:?}");
        assert!(p.errors.iter().any(|e| e.code == "additionalProperties"));
        assert!(p.errors.iter().all(|e| !e.message.contains("secret-42")), "{:?}", p.errors);
    }

    #[test]
    fn oversized_and_malformed_bodies() {
        let big = format!(r#"{{"customerNumber":"1","lastName":"{}"}}"#, "x".repeat(MAX_JSON_BODY));
        assert_eq!(read_json::<Lookup>(&request(&big), &schema()).unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(read_json::<Lookup>(&request("{"), &schema()).unwrap_err().code, "MALFORMED_JSON");
        assert_eq!(read_json::<Lookup>(&request(""), &schema()).unwrap_err().code, "MALFORMED_JSON");
    }

    #[test]
    fn problem_responses_carry_code_and_request_id() {
        let r = Problem::new(StatusCode::CONFLICT, "SOMETHING_TAKEN", "taken").to_response("req-1");
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
        let Body::Text(text) = r.body() else { panic!() };
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["code"], "SOMETHING_TAKEN");
        assert_eq!(v["requestId"], "req-1");
        assert!(crate::schemas::compile("problem.schema.json").unwrap().is_valid(&v));
    }
}
