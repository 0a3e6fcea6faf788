//! HTTP mapping of the account.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Response};
use portal_domain::changes::Confirmation;
use portal_domain::clock::SystemClock;
use portal_domain::identity::account::{AccountError, AccountService};
use portal_domain::identity::sessions::Access;
use portal_platform::data_export::DynamoExport;
use portal_platform::dynamo::{DynamoDirectory, DynamoLimiter};
use portal_platform::http::Call;
use portal_platform::http::{IdentificationBody, Problem, json_response, no_content, problems};
use portal_platform::identity::{DynamoLogins, DynamoSessions, DynamoThrottle, SesMailer};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use secrecy::SecretString;
use serde::Deserialize;

/// The optional body of `DELETE /v1/me`: the current password, unless the login is recent.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeletionBody {
    current_password: Option<SecretString>,
}

type Service =
    AccountService<DynamoDirectory, DynamoLimiter, DynamoLogins, DynamoSessions, WritePath, SesMailer, SystemClock>;

pub struct Api {
    service: Service,
    export: DynamoExport,
    auth: LiveAuthenticator,
    confirmation: Confirmation<DynamoLogins, DynamoThrottle, SystemClock>,
    add_schema: Validator,
    deletion_schema: Validator,
}

portal_platform::handle_routes!(Api, "account", {
    GetAccount => me,
    DeleteAccount => delete,
    ExportMyData => data_export,
    AddCustomerNumber => add_customer_number,
});

impl Api {
    pub async fn from_env() -> Result<Self, lambda_http::Error> {
        let live = Live::from_env().await?;
        let service = AccountService {
            directory: live.directory(),
            limiter: live.limiter(),
            logins: live.logins(),
            sessions: live.sessions(),
            writer: live.writer(),
            mailer: live.mailer(),
            clock: SystemClock,
            policy: live.config.registration_policy(),
        };
        Ok(Self {
            service,
            export: live.export(),
            auth: live.authenticator(),
            confirmation: live.confirmation(),
            add_schema: schemas::compile("customer-identification.request.schema.json")?,
            deletion_schema: schemas::compile("account-deletion.request.schema.json")?,
        })
    }

    /// Everything the backend holds about the login and its customers (GDPR Art. 15/20),
    /// as a download. Like a sensitive change it needs a fresh login: a GET carries no
    /// body, and a password in a URL or header would stay in logs and caches, so the portal
    /// signs in again (`POST /v1/sessions`) after the confirmation window.
    async fn data_export(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (_req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::Regular).await?;
        self.confirmation.confirm(&caller, None).await.map_err(|e| problems::change(e, id))?;
        let unexpected = |e: portal_domain::ports::StoreError| Problem::unexpected(id, &e);
        let (login, customers) =
            futures::try_join!(self.export.login(&caller), self.export.customers(&caller)).map_err(unexpected)?;
        let now = time::OffsetDateTime::now_utc();
        let generated_at = portal_domain::entities::timestamp::format(now);
        let document = portal_domain::data_export::document(login, customers, &generated_at);
        let mut response = json_response(StatusCode::OK, &document, id);
        let file = format!("attachment; filename=\"evi-portal-export-{}.json\"", caller.login_id);
        if let Ok(value) = http::HeaderValue::from_str(&file) {
            response.headers_mut().insert(http::header::CONTENT_DISPOSITION, value);
        }
        response.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        Ok(response)
    }

    async fn me(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (_req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let view = self.service.me(&caller).await.map_err(|e| problem(e, id))?;
        Ok(json_response(StatusCode::OK, &view, id))
    }

    /// Deleting the login is confirmed like a sensitive change: the current password, or a
    /// login of the last few minutes (a session left open on a shared computer cannot).
    async fn delete(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let body = if req.body().is_empty() {
            DeletionBody::default()
        } else {
            call.json::<DeletionBody>(&self.deletion_schema)?.0
        };
        self.confirmation
            .confirm(&caller, body.current_password.as_ref())
            .await
            .map_err(|e| problems::change(e, id))?;
        self.service.delete(&caller).await.map_err(|e| problem(e, id))?;
        Ok(no_content(id))
    }

    async fn add_customer_number(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let (body, _) = call.json::<IdentificationBody>(&self.add_schema)?;
        let who = body.identification(req);
        let view = self.service.add_customer_number(&caller, &who).await.map_err(|e| problem(e, id))?;
        Ok(json_response(StatusCode::OK, &view, id))
    }
}

fn problem(error: AccountError, request_id: &str) -> Problem {
    match error {
        AccountError::NotIdentified => problems::customer_not_found(),
        AccountError::BillNumberRequired => problems::bill_number_required(),
        AccountError::EmailNotOnFile => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "EMAIL_NOT_ON_FILE",
            "This customer number can be added only to a login with the e-mail address customer service has on \
             file for it. Ask customer service to add it, or to update the address.",
        ),
        AccountError::TooManyAttempts { retry_after } => problems::too_many_attempts(retry_after),
        AccountError::AlreadyRegistered => {
            problems::already_registered("This customer number belongs to another portal login.")
        }
        AccountError::Conflict => problems::concurrent_update("The account changed at the same time. Retry."),
        // The session outlived its login: answer like an ended session.
        AccountError::NotFound => Problem::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Log in: the session is missing, has ended or has expired.",
        ),
        AccountError::Store(e) => Problem::unexpected(request_id, &e),
    }
}
