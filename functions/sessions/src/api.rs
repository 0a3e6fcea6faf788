//! HTTP mapping of sessions and passwords.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Response};
use portal_domain::entities::timestamp;
use portal_domain::identity::access::{AccessError, SessionGrant};
use portal_domain::identity::sessions::Access;
use portal_platform::http::Call;
use portal_platform::http::{FieldError, Problem, json_response, no_content, source_address};
use portal_platform::live::{Live, LiveAccess, LiveAuthenticator, LiveResetDesk};
use portal_platform::schemas;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: SecretString,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChangeBody {
    current_password: SecretString,
    new_password: SecretString,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResetBody {
    username_or_email: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResetConfirmBody {
    token: SecretString,
    new_password: SecretString,
}

pub struct Api {
    service: LiveAccess,
    resets: LiveResetDesk,
    auth: LiveAuthenticator,
    login_schema: Validator,
    change_schema: Validator,
    reset_schema: Validator,
    confirm_schema: Validator,
}

fn grant_body(grant: &SessionGrant) -> serde_json::Value {
    json!({
        "token": grant.token.expose_secret(),
        "expiresAt": timestamp::format(grant.expires_at),
        "idleTimeoutSeconds": grant.idle_timeout.whole_seconds(),
        "mustChangePassword": grant.must_change_password,
    })
}

portal_platform::handle_routes!(Api, "sessions", {
    Login => login,
    Logout => logout,
    ChangePassword => change_password,
    RequestPasswordReset => request_reset,
    ConfirmPasswordReset => confirm_reset,
});

impl Api {
    pub async fn from_env() -> Result<Self, lambda_http::Error> {
        let live = Live::from_env().await?;
        Ok(Self {
            service: live.access(),
            resets: live.reset_desk(),
            auth: live.authenticator(),
            login_schema: schemas::compile("session.request.schema.json")?,
            change_schema: schemas::compile("password-change.request.schema.json")?,
            reset_schema: schemas::compile("password-reset.request.schema.json")?,
            confirm_schema: schemas::compile("password-reset-confirmation.request.schema.json")?,
        })
    }

    async fn login(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let (body, _) = call.json::<LoginBody>(&self.login_schema)?;
        let grant = self.service.login(&body.username, &body.password, &source_address(req)).await;
        let grant = grant.map_err(|e| problem(e, id))?;
        Ok(json_response(StatusCode::CREATED, &grant_body(&grant), id))
    }

    async fn logout(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (_req, id) = (&call.req, call.id.as_str());
        let caller = call.caller(&self.auth, Access::DuringPasswordChange).await?;
        self.service.logout(&caller).await.map_err(|e| problem(e, id))?;
        Ok(no_content(id))
    }

    async fn change_password(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let id = call.id.as_str();
        let caller = call.caller(&self.auth, Access::DuringPasswordChange).await?;
        let (body, _) = call.json::<PasswordChangeBody>(&self.change_schema)?;
        let grant = self
            .service
            .change_password(&caller, &body.current_password, &body.new_password)
            .await
            .map_err(|e| problem(e, id))?;
        Ok(json_response(StatusCode::OK, &grant_body(&grant), id))
    }

    async fn request_reset(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let (req, id) = (&call.req, call.id.as_str());
        let (body, _) = call.json::<ResetBody>(&self.reset_schema)?;
        let answer = self.resets.request(&body.username_or_email, &source_address(req)).await;
        answer.map_err(|e| problem(e, id))?;
        let answer = json!({ "status": "ACCEPTED", "detail": "If a login exists for this name or address, an e-mail is on its way." });
        Ok(json_response(StatusCode::ACCEPTED, &answer, id))
    }

    async fn confirm_reset(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let id = call.id.as_str();
        let (body, _) = call.json::<ResetConfirmBody>(&self.confirm_schema)?;
        self.service.confirm_reset(&body.token, &body.new_password).await.map_err(|e| problem(e, id))?;
        Ok(no_content(id))
    }
}

fn problem(error: AccessError, request_id: &str) -> Problem {
    match error {
        AccessError::InvalidCredentials => {
            Problem::new(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS", "Username or password is wrong.")
        }
        AccessError::PendingApproval => Problem::new(
            StatusCode::FORBIDDEN,
            "LOGIN_PENDING_APPROVAL",
            "The login waits for customer service to approve it; you get an e-mail once it is active.",
        ),
        AccessError::InitialPasswordExpired => Problem::new(
            StatusCode::UNAUTHORIZED,
            "INITIAL_PASSWORD_EXPIRED",
            "The initial password has expired. Request a new password by reset.",
        ),
        AccessError::TooManyAttempts { retry_after } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_ATTEMPTS",
            "Too many failed attempts. Wait before the next one (Retry-After).",
        )
        .with_retry_after(retry_after.whole_seconds()),
        AccessError::WrongCurrentPassword => {
            Problem::new(StatusCode::FORBIDDEN, "CURRENT_PASSWORD_WRONG", "The current password is wrong.")
        }
        AccessError::NewPassword(rule) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, rule.code(), rule.message())
            .with_errors(vec![FieldError {
                pointer: "/newPassword".into(),
                code: rule.code().into(),
                message: rule.message().into(),
            }]),
        AccessError::InvalidResetToken => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "RESET_TOKEN_INVALID",
            "The reset code is unknown, used or expired. Request a new one.",
        ),
        AccessError::Store(e) => Problem::unexpected(request_id, &e),
    }
}
