//! Messages (capability 10): the contact form, with or without a session.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Error, Response, run, service_fn};
use portal_domain::clock::SystemClock;
use portal_domain::identity::credentials::EmailAddress;
use portal_domain::identity::sessions::Access;
use portal_domain::ids::CustomerNumber;
use portal_domain::messages::{MessageInput, MessageService};
use portal_platform::dynamo::DynamoLimiter;
use portal_platform::http::Call;
use portal_platform::http::{FieldError, Problem, bearer_token, problems, source_address};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use serde::Deserialize;

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

portal_platform::handle_routes!(Api, "messages", {
    SendMessage => send,
});

impl Api {
    async fn send(&self, call: &Call) -> Result<Response<Body>, Problem> {
        // The session is optional; a token that is sent must be valid.
        let caller = match bearer_token(&call.req) {
            Some(_) => Some(call.caller(&self.auth, Access::Regular).await?),
            None => None,
        };
        let (body, key) = call.keyed_json::<MessageBody>(&self.schema)?;
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
            .send(caller.as_ref(), &source_address(&call.req).to_string(), input, key)
            .await
            .map_err(|e| problems::change(e, &call.id))?;
        call.answer(StatusCode::ACCEPTED, &answer)
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
