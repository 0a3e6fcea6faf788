//! Messages (capability 10): the contact form, with or without a session.

use http::{Method, StatusCode};
use jsonschema::Validator;
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::clock::SystemClock;
use portal_domain::identity::credentials::EmailAddress;
use portal_domain::identity::sessions::Access;
use portal_domain::ids::CustomerNumber;
use portal_domain::messages::{MessageInput, MessageService};
use portal_domain::requests::fingerprint;
use portal_platform::dynamo::DynamoLimiter;
use portal_platform::http::{
    FieldError, Problem, authenticate, bearer_token, idempotency_key, json_response, problems, read_json, serve,
    source_address,
};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use serde::Deserialize;
use std::convert::Infallible;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageBody {
    reason: String,
    subject: String,
    text: String,
    customer_number: Option<CustomerNumber>,
    name: Option<String>,
    email: Option<String>,
}

struct Api {
    service: MessageService<DynamoReads, DynamoLimiter, WritePath, SystemClock>,
    auth: LiveAuthenticator,
    schema: Validator,
}

impl Api {
    async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve(req, |req, method, path, id| async move {
            match (method, path.as_str()) {
                (Method::POST, "/v1/messages") => self.send(&req, &id).await,
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn send(&self, req: &Request, id: &str) -> Result<Response<Body>, Problem> {
        // The session is optional; a token that is sent must be valid.
        let caller = match bearer_token(req) {
            Some(_) => Some(authenticate(&self.auth, req, Access::Regular, id).await?),
            None => None,
        };
        let key = idempotency_key(req)?;
        let (body, raw) = read_json::<MessageBody>(req, &self.schema)?;
        let sender = match (body.name, body.email) {
            (Some(name), Some(email)) => {
                let email =
                    EmailAddress::parse(&email).map_err(|m| {
                        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "EMAIL_INVALID", m).with_errors(vec![
                            FieldError { pointer: "/email".into(), code: "EMAIL_INVALID".into(), message: m.into() },
                        ])
                    })?;
                Some((name.trim().to_owned(), email))
            }
            _ => None,
        };
        let input = MessageInput {
            reason: body.reason,
            subject: body.subject.trim().to_owned(),
            text: body.text,
            customer: body.customer_number,
            sender,
        };
        let answer = self
            .service
            .send(caller.as_ref(), &source_address(req).to_string(), input, key.map(|k| (k, fingerprint(&raw))))
            .await
            .map_err(|e| problems::change(e, id))?;
        Ok(json_response(StatusCode::ACCEPTED, &answer, id))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api {
        service: MessageService {
            reads: live.reads(),
            limiter: live.limiter(),
            writer: live.writer(),
            clock: SystemClock,
            policy: live.config.messages.clone(),
        },
        auth: live.authenticator(),
        schema: schemas::compile("message.request.schema.json")?,
    };
    run(service_fn(|req| api.handle(req))).await
}
