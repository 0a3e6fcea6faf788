//! HTTP mapping of registration.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Response};
use portal_domain::clock::SystemClock;
use portal_domain::contact::PhoneNumber;
use portal_domain::entities::timestamp;
use portal_domain::identity::credentials::{EmailAddress, Username};
use portal_domain::identity::registration::{PersonalData, Registration, RegistrationError, RegistrationService};
use portal_platform::dynamo::{DynamoDirectory, DynamoLimiter};
use portal_platform::http::Call;
use portal_platform::http::{FieldError, IdentificationBody, Problem, json_response, problems};
use portal_platform::identity::{DynamoLogins, DynamoTokens, SesMailer};
use portal_platform::live::Live;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    registration_token: SecretString,
    username: Username,
    email: EmailAddress,
    salutation: String,
    phone: Option<String>,
    accepted_terms: AcceptedTerms,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcceptedTerms {
    terms_of_use: String,
    privacy_notice: String,
}

pub type Service =
    RegistrationService<DynamoDirectory, DynamoLimiter, DynamoLogins, DynamoTokens, WritePath, SesMailer, SystemClock>;

pub struct Api {
    service: Service,
    verify_schema: Validator,
    register_schema: Validator,
}

portal_platform::handle_routes!(Api, "registration", {
    VerifyRegistration => verify,
    Register => register,
});

impl Api {
    pub async fn from_env() -> Result<Self, lambda_http::Error> {
        let live = Live::from_env().await?;
        let service = RegistrationService {
            directory: live.directory(),
            limiter: live.limiter(),
            logins: live.logins(),
            tokens: live.tokens(),
            writer: live.writer(),
            mailer: live.mailer(),
            clock: SystemClock,
            policy: live.config.registration_policy(),
        };
        Ok(Self::new(service)?)
    }

    pub fn new(service: Service) -> Result<Self, schemas::SchemaError> {
        Ok(Self {
            service,
            verify_schema: schemas::compile("customer-identification.request.schema.json")?,
            register_schema: schemas::compile("registration.request.schema.json")?,
        })
    }

    async fn verify(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let (body, _) = call.json::<IdentificationBody>(&self.verify_schema)?;
        let who = body.identification(req);
        let verified = self.service.verify(&who).await.map_err(|e| problem(e, id))?;
        let answer = json!({
            "registrationToken": verified.registration_token.expose_secret(),
            "expiresAt": timestamp::format(verified.expires_at),
        });
        Ok(json_response(StatusCode::OK, &answer, id))
    }

    async fn register(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let id = call.id.as_str();
        let (body, key) = call.keyed_json::<RegisterBody>(&self.register_schema)?;
        let phone = match body.phone.as_deref() {
            None => None,
            Some(p) => Some(PhoneNumber::parse(p).map_err(|m| {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "PHONE_INVALID", m).with_errors(vec![FieldError {
                    pointer: "/phone".into(),
                    code: "PHONE_INVALID".into(),
                    message: m.into(),
                }])
            })?),
        };
        let registration = Registration {
            registration_token: body.registration_token,
            username: body.username,
            email: body.email,
            personal: PersonalData {
                salutation: body.salutation,
                phone,
                terms_of_use_version: body.accepted_terms.terms_of_use,
                privacy_notice_version: body.accepted_terms.privacy_notice,
            },
            idempotency: key,
        };
        let answer = self.service.register(registration).await.map_err(|e| problem(e, id))?;
        Ok(json_response(StatusCode::CREATED, &answer, id))
    }
}

fn problem(error: RegistrationError, request_id: &str) -> Problem {
    match error {
        RegistrationError::NotIdentified => problems::customer_not_found(),
        RegistrationError::BillNumberRequired => problems::bill_number_required(),
        RegistrationError::TooManyAttempts { retry_after } => problems::too_many_attempts(retry_after),
        RegistrationError::AlreadyRegistered => {
            problems::already_registered("This customer already has a portal login. Log in, or reset the password.")
        }
        RegistrationError::UsernameTaken => {
            Problem::new(StatusCode::CONFLICT, "USERNAME_TAKEN", "This username is taken; choose another.")
        }
        RegistrationError::InvalidToken => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "REGISTRATION_TOKEN_INVALID",
            "The registration token is unknown, used or expired. Start again with the customer number.",
        ),
        RegistrationError::IdempotencyKeyReused => problems::idempotency_key_reused(),
        RegistrationError::Store(e) => Problem::unexpected(request_id, &e),
    }
}
