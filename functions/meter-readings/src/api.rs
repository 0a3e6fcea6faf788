//! HTTP mapping of the meter-reading capability: request bodies to domain commands,
//! domain outcomes to answers.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Request, RequestExt, Response};
use portal_domain::clock::{Clock, SystemClock};
use portal_domain::consumption::{consumption_view, readings_view};
use portal_domain::entities::iso_date;
use portal_domain::entities::{MeterReading, MeterRecord};
use portal_domain::identity::sessions::{Access, Authenticator};
use portal_domain::identity::{LoginStore, SessionStore};
use portal_domain::ids::{CustomerNumber, MeterNumber, RegisterCode};
use portal_domain::meter_reading::{
    AnonymousPolicy, AnonymousReading, Identification, MeterReadingError, MeterReadingService,
};
use portal_domain::plausibility::SubmittedValue;
use portal_domain::ports::{AttemptLimiter, CustomerDirectory, RequestWriter};
use portal_domain::reads::ScopedReads;
use portal_platform::dynamo::{DynamoDirectory, DynamoLimiter};
use portal_platform::http::{Problem, json_response, problems, source_address};
use portal_platform::identity::{DynamoLogins, DynamoSessions};
use portal_platform::live::Live;
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use portal_platform::{
    http::{Call, serve_routes},
    routes::Operation,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::convert::Infallible;
use time::Date;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookupBody {
    customer_number: CustomerNumber,
    last_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubmitBody {
    customer_number: CustomerNumber,
    last_name: String,
    meter_number: MeterNumber,
    #[serde(with = "iso_date")]
    reading_date: Date,
    values: Vec<ValueBody>,
    #[serde(default)]
    confirmed_implausible: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadingBody {
    #[serde(with = "iso_date")]
    reading_date: Date,
    values: Vec<ValueBody>,
    #[serde(default)]
    confirmed_implausible: bool,
}

#[derive(Deserialize)]
struct ValueBody {
    register: RegisterCode,
    value: Decimal,
}

pub struct Api<D, L, W, C, R, S, G> {
    service: MeterReadingService<D, L, W, C>,
    /// The customer's own meters, for the logged-in views.
    reads: R,
    auth: Authenticator<S, G, C>,
    lookup_schema: Validator,
    submit_schema: Validator,
    reading_schema: Validator,
}

impl Api<DynamoDirectory, DynamoLimiter, WritePath, SystemClock, DynamoReads, DynamoSessions, DynamoLogins> {
    /// Everything built once per process: configuration, clients, compiled schemas.
    pub async fn from_env() -> Result<Self, lambda_http::Error> {
        let live = Live::from_env().await?;
        let service = MeterReadingService {
            directory: live.directory(),
            limiter: live.limiter(),
            writer: live.writer(),
            clock: SystemClock,
            policy: AnonymousPolicy { limits: live.config.identification, readings: live.config.readings },
        };
        Ok(Self::new(service, live.reads(), live.authenticator())?)
    }
}

impl<D, L, W, C, R, S, G> Api<D, L, W, C, R, S, G>
where
    D: CustomerDirectory,
    L: AttemptLimiter,
    W: RequestWriter,
    C: Clock,
    R: ScopedReads,
    S: SessionStore,
    G: LoginStore,
{
    pub fn new(
        service: MeterReadingService<D, L, W, C>,
        reads: R,
        auth: Authenticator<S, G, C>,
    ) -> Result<Self, schemas::SchemaError> {
        Ok(Self {
            service,
            reads,
            auth,
            lookup_schema: schemas::compile("anonymous-meter-reading-lookup.request.schema.json")?,
            submit_schema: schemas::compile("anonymous-meter-reading.request.schema.json")?,
            reading_schema: schemas::compile("meter-reading.request.schema.json")?,
        })
    }

    pub async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve_routes(req, "meter-readings", |call| async move {
            match call.operation() {
                Operation::LookupAnonymousMeterReading => self.lookup(&call).await,
                Operation::SubmitAnonymousMeterReading => self.submit(&call).await,
                Operation::GetMeterReadings => self.readings(&call).await,
                Operation::SubmitMeterReading => self.submit_logged_in(&call).await,
                Operation::GetConsumption => self.consumption(&call).await,
                Operation::GetReadingRange => self.reading_range(&call).await,
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn lookup(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let (body, _) = call.json::<LookupBody>(&self.lookup_schema)?;
        let who = Identification {
            customer: body.customer_number,
            name: body.last_name,
            source: source_address(req),
            bill: None,
        };
        let view = self.service.lookup(&who).await.map_err(|e| problem(e, id))?;
        Ok(json_response(StatusCode::OK, &view, id))
    }

    /// The caller's meter with its history, or 404 (unknown or another customer's).
    async fn own_meter(&self, call: &Call) -> Result<(MeterRecord, Vec<MeterReading>), Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let meter = call.path("meterNumber", MeterNumber::parse)?;
        let found = self.reads.meter_readings(&caller, &meter).await.map_err(call.unexpected())?;
        found.ok_or_else(Problem::not_found)
    }

    async fn readings(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (meter, history) = self.own_meter(call).await?;
        call.answer(StatusCode::OK, &readings_view(&meter, &history))
    }

    async fn consumption(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (meter, history) = self.own_meter(call).await?;
        call.answer(StatusCode::OK, &consumption_view(&meter, &history))
    }

    /// The plausible values of the caller's meter for a reading on `date` (default today).
    async fn reading_range(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let meter = call.path("meterNumber", MeterNumber::parse)?;
        let date = match req.query_string_parameters_ref().and_then(|q| q.first("date")) {
            None => self.service.clock.today(),
            Some(v) => Date::parse(v, iso_date::FORMAT)
                .map_err(|_| problems::invalid_query("date", "expected a date YYYY-MM-DD"))?,
        };
        let view = self.service.reading_range(&caller, &meter, date).await.map_err(|e| match e {
            MeterReadingError::MeterNotFound => Problem::not_found(),
            other => problem(other, id),
        })?;
        Ok(json_response(StatusCode::OK, &view, id))
    }

    async fn submit(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let (body, key) = call.keyed_json::<SubmitBody>(&self.submit_schema)?;
        let reading = AnonymousReading {
            identification: Identification {
                customer: body.customer_number,
                name: body.last_name,
                source: source_address(req),
                bill: None,
            },
            meter: body.meter_number,
            reading_date: body.reading_date,
            values: body.values.into_iter().map(|v| SubmittedValue { register: v.register, value: v.value }).collect(),
            confirmed_implausible: body.confirmed_implausible,
            idempotency: key,
        };
        let answer = self.service.submit(reading).await.map_err(|e| problem(e, id))?;
        Ok(json_response(StatusCode::ACCEPTED, &answer, id))
    }
}

impl<D, L, W, C, R, S, G> Api<D, L, W, C, R, S, G>
where
    D: CustomerDirectory,
    L: AttemptLimiter,
    W: RequestWriter,
    C: Clock,
    R: ScopedReads,
    S: SessionStore,
    G: LoginStore,
{
    /// A reading of a logged-in customer's meter: the same rules and write as anonymously.
    async fn submit_logged_in(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let id = call.id.as_str();
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let meter = call.path("meterNumber", MeterNumber::parse)?;
        let (body, key) = call.keyed_json::<ReadingBody>(&self.reading_schema)?;
        let values: Vec<SubmittedValue> =
            body.values.into_iter().map(|v| SubmittedValue { register: v.register, value: v.value }).collect();
        let answer = self
            .service
            .submit_as(&caller, &meter, body.reading_date, &values, body.confirmed_implausible, key)
            .await
            .map_err(|e| match e {
                MeterReadingError::MeterNotFound => Problem::not_found(),
                other => problem(other, id),
            })?;
        Ok(json_response(StatusCode::ACCEPTED, &answer, id))
    }
}

/// The documented answer for every outcome of the capability.
fn problem(error: MeterReadingError, request_id: &str) -> Problem {
    match error {
        MeterReadingError::NotIdentified => problems::customer_not_found(),
        MeterReadingError::TooManyAttempts { retry_after } => problems::too_many_attempts(retry_after),
        MeterReadingError::MeterNotFound => {
            Problem::new(StatusCode::NOT_FOUND, "METER_NOT_FOUND", "The customer has no meter with this number.")
        }
        MeterReadingError::RequestInProgress => problems::request_in_progress(),
        MeterReadingError::Conflict => problems::concurrent_update(
            "Another reading of this meter was recorded at the same time. Check the last reading and retry.",
        ),
        MeterReadingError::IdempotencyKeyReused => problems::idempotency_key_reused(),
        MeterReadingError::Implausible(violations) => problems::implausible(&violations, ""),
        MeterReadingError::Store(e) => Problem::unexpected(request_id, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::clock::FixedClock;
    use portal_domain::export::parse_export;
    use portal_domain::memory::{MemoryDirectory, MemoryLimiter, MemoryLogins, MemorySessions, MemoryWriter};
    use serde_json::{Value, json};
    use time::macros::datetime;

    type TestApi =
        Api<MemoryDirectory, MemoryLimiter, MemoryWriter, FixedClock, MemoryDirectory, MemorySessions, MemoryLogins>;

    const NOW: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

    fn auth(sessions: &MemorySessions) -> Authenticator<MemorySessions, MemoryLogins, FixedClock> {
        Authenticator {
            sessions: sessions.clone(),
            logins: MemoryLogins::default(),
            clock: FixedClock(NOW),
            policy: Default::default(),
        }
    }

    fn api() -> TestApi {
        let directory = MemoryDirectory::new(parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap());
        let service = MeterReadingService {
            directory: directory.clone(),
            limiter: MemoryLimiter::default(),
            writer: MemoryWriter::default(),
            clock: FixedClock(NOW),
            policy: AnonymousPolicy::default(),
        };
        Api::new(service, directory, auth(&MemorySessions::default())).unwrap()
    }

    /// A real API Gateway HTTP API (payload 2.0) event, as Lambda receives it.
    fn event(path: &str, body: &Value, idempotency_key: Option<&str>) -> Request {
        let mut e: Value = serde_json::from_str(include_str!("../tests/fixtures/apigw-v2-post.json")).unwrap();
        e["rawPath"] = json!(path);
        e["routeKey"] = json!(format!("POST {path}"));
        e["requestContext"]["http"]["path"] = json!(path);
        e["requestContext"]["routeKey"] = json!(format!("POST {path}"));
        e["body"] = json!(body.to_string());
        if let Some(k) = idempotency_key {
            e["headers"]["idempotency-key"] = json!(k);
        }
        lambda_http::request::from_str(&e.to_string()).unwrap()
    }

    fn call(api: &TestApi, req: Request) -> (StatusCode, Value) {
        let res = futures::executor::block_on(api.handle(req)).unwrap();
        let Body::Text(text) = res.body() else { panic!("no text body") };
        (res.status(), serde_json::from_str(text).unwrap())
    }

    fn reading(ht: &str) -> Value {
        json!({
            "customerNumber": "1000001", "lastName": " mustermann ", "meterNumber": "1EMH0012345678",
            "readingDate": "2026-12-01", "values": [{"register": "HT", "value": ht}, {"register": "NT", "value": "19650"}]
        })
    }

    #[test]
    fn lookup_answers_with_the_response_schema() {
        let (status, body) = call(
            &api(),
            event(
                "/v1/anonymous/meter-readings/lookup",
                &json!({"customerNumber": "1000001", "lastName": "Mustermann"}),
                None,
            ),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        let schema = schemas::compile("anonymous-meter-reading-lookup.response.schema.json").unwrap();
        assert!(schema.is_valid(&body), "{body}");
        assert_eq!(body["consumptionPoints"][0]["meters"][0]["registers"][0]["lastReading"]["value"], "29735");
    }

    #[test]
    fn submission_is_accepted_once_per_idempotency_key() {
        let api = api();
        let (status, first) = call(&api, event("/v1/anonymous/meter-readings", &reading("29800"), Some("key-1")));
        assert_eq!(status, StatusCode::ACCEPTED, "{first}");
        assert!(schemas::compile("meter-reading-receipt.response.schema.json").unwrap().is_valid(&first), "{first}");
        let (status, again) = call(&api, event("/v1/anonymous/meter-readings", &reading("29800"), Some("key-1")));
        assert_eq!((status, &again), (StatusCode::ACCEPTED, &first));
        assert_eq!(api.service.writer.committed().len(), 1);
    }

    #[test]
    fn implausible_reading_is_422_with_the_rule_code_and_pointer() {
        let (status, body) = call(&api(), event("/v1/anonymous/meter-readings", &reading("100"), None));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "READING_BELOW_LAST_READING");
        assert_eq!(body["errors"][0]["pointer"], "/values/0/value");
    }

    #[test]
    fn invalid_input_is_400_naming_the_field() {
        let mut body = reading("29800");
        body["readingDate"] = json!("2026-02-30");
        let (status, problem) = call(&api(), event("/v1/anonymous/meter-readings", &body, None));
        assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")));
        assert_eq!(problem["errors"][0]["pointer"], "/readingDate");

        body["readingDate"] = json!("2026-12-01");
        body["values"][0]["value"] = json!(29800);
        let (status, problem) = call(&api(), event("/v1/anonymous/meter-readings", &body, None));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["errors"][0]["pointer"], "/values/0/value");
    }

    #[test]
    fn wrong_name_and_unknown_customer_answer_alike() {
        let api = api();
        let (s1, wrong) = call(
            &api,
            event(
                "/v1/anonymous/meter-readings/lookup",
                &json!({"customerNumber": "1000001", "lastName": "Muster"}),
                None,
            ),
        );
        let (s2, unknown) = call(
            &api,
            event(
                "/v1/anonymous/meter-readings/lookup",
                &json!({"customerNumber": "1999999", "lastName": "Mustermann"}),
                None,
            ),
        );
        assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
        assert_eq!((&wrong["code"], &wrong["detail"]), (&unknown["code"], &unknown["detail"]));
    }

    #[test]
    fn every_refusal_has_its_documented_status_and_code() {
        let api = api();
        let (status, body) = call(&api, event("/v1/anonymous/meter-readings", &reading("29800"), Some("k")));
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (status, body) = call(&api, event("/v1/anonymous/meter-readings", &reading("29801"), Some("k")));
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("IDEMPOTENCY_KEY_REUSED")));

        let mut oversized = event("/v1/anonymous/meter-readings", &json!({}), None);
        *oversized.body_mut() = Body::Text(" ".repeat(portal_platform::http::MAX_JSON_BODY + 1));
        let (status, body) = call(&api, oversized);
        assert_eq!((status, body["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("PAYLOAD_TOO_LARGE")));

        let mut form = event("/v1/anonymous/meter-readings", &reading("29800"), None);
        form.headers_mut().insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        let (status, _) = call(&api, form);
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        for _ in 0..10 {
            call(
                &api,
                event(
                    "/v1/anonymous/meter-readings/lookup",
                    &json!({"customerNumber": "1000002", "lastName": "x"}),
                    None,
                ),
            );
        }
        let (status, body) = call(
            &api,
            event(
                "/v1/anonymous/meter-readings/lookup",
                &json!({"customerNumber": "1000002", "lastName": "Müller-Lüdenscheidt"}),
                None,
            ),
        );
        assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("TOO_MANY_ATTEMPTS")));
    }

    /// A directory whose storage is down.
    struct Unavailable;

    impl CustomerDirectory for Unavailable {
        async fn partner(
            &self,
            _: &CustomerNumber,
        ) -> Result<Option<portal_domain::entities::BusinessPartner>, portal_domain::ports::StoreError> {
            Err(portal_domain::ports::StoreError("GetItem: connection refused to table secret-internal-name".into()))
        }
        async fn contracts(
            &self,
            _: &CustomerNumber,
        ) -> Result<
            Vec<portal_domain::export::Owned<portal_domain::entities::Contract>>,
            portal_domain::ports::StoreError,
        > {
            Ok(Vec::new())
        }
        async fn contract_accounts(
            &self,
            _: &CustomerNumber,
        ) -> Result<Vec<portal_domain::entities::ContractAccountRecord>, portal_domain::ports::StoreError> {
            Ok(Vec::new())
        }
        async fn meters(
            &self,
            _: &CustomerNumber,
        ) -> Result<Vec<portal_domain::entities::MeterRecord>, portal_domain::ports::StoreError> {
            Ok(Vec::new())
        }
        async fn meter(
            &self,
            _: &CustomerNumber,
            _: &MeterNumber,
        ) -> Result<Option<portal_domain::entities::MeterRecord>, portal_domain::ports::StoreError> {
            Ok(None)
        }
    }

    #[test]
    fn a_storage_failure_is_a_generic_500_with_the_request_id() {
        let service = MeterReadingService {
            directory: Unavailable,
            limiter: MemoryLimiter::default(),
            writer: MemoryWriter::default(),
            clock: FixedClock(NOW),
            policy: AnonymousPolicy::default(),
        };
        let reads = MemoryDirectory::new(parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap());
        let api = Api::new(service, reads, auth(&MemorySessions::default())).unwrap();
        let res = futures::executor::block_on(api.handle(event(
            "/v1/anonymous/meter-readings/lookup",
            &json!({"customerNumber": "1000001", "lastName": "Mustermann"}),
            None,
        )))
        .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let Body::Text(text) = res.body() else { panic!() };
        let body: Value = serde_json::from_str(text).unwrap();
        assert_eq!(body["code"], "INTERNAL_ERROR");
        assert_eq!(body["requestId"], res.headers()["x-request-id"].to_str().unwrap());
        assert!(!text.contains("secret-internal-name"), "{text}");
    }

    #[test]
    fn unknown_routes_are_404_problems_and_other_methods_405_with_allow() {
        let (status, body) = call(&api(), event("/v1/anonymous/nothing", &json!({}), None));
        assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
        // Another function's route is not this function's.
        let (status, _) = call(&api(), event("/v1/messages", &json!({}), None));
        assert_eq!(status, StatusCode::NOT_FOUND);
        let res =
            futures::executor::block_on(api().handle(event("/v1/meters/1EMH0012345678/consumption", &json!({}), None)))
                .unwrap();
        assert_eq!((res.status(), res.headers()["allow"].to_str().unwrap()), (StatusCode::METHOD_NOT_ALLOWED, "GET"));
        let Body::Text(text) = res.body() else { panic!("no text body") };
        let problem: Value = serde_json::from_str(text).unwrap();
        assert_eq!(problem["code"], "METHOD_NOT_ALLOWED");
        assert!(portal_platform::schemas::compile("problem.schema.json").unwrap().is_valid(&problem), "{problem}");
    }
}
