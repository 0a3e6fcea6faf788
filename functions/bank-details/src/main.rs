//! Bank details (capability 8): payment method and accounts with IBANs masked; the change
//! of payment method, payment account and payout account; the revocation of the
//! direct-debit mandate.

use http::{Method, StatusCode};
use jsonschema::Validator;
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use portal_domain::bank::{AccountInput, BankChange, BankDetailsService};
use portal_domain::clock::SystemClock;
use portal_domain::contact::Change;
use portal_domain::entities::PaymentMethod;
use portal_domain::identity::sessions::Access;
use portal_domain::ids::AccountNumber;
use portal_domain::reads::{BankDetailsView, ScopedReads};
use portal_domain::requests::fingerprint_unconfirmed;
use portal_platform::http::{
    Problem, authenticate, idempotency_key, json_response, path_param, problems, read_json, serve,
};
use portal_platform::identity::{DynamoLogins, DynamoThrottle, SesMailer};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use std::convert::Infallible;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountBody {
    holder: String,
    iban: String,
    bic: Option<String>,
}

impl From<AccountBody> for AccountInput {
    fn from(b: AccountBody) -> Self {
        Self { holder: b.holder, iban: b.iban, bic: b.bic }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeBody {
    payment_method: PaymentMethod,
    bank_account: Option<AccountBody>,
    /// Absent: keep; `null`: remove; an account: set.
    #[serde(default, deserialize_with = "present")]
    payout_account: Option<Option<AccountBody>>,
    current_password: Option<SecretString>,
    /// The customer accepted the SEPA mandate text of this version.
    #[serde(default)]
    sepa_mandate_accepted: bool,
    sepa_mandate_text_version: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RevocationBody {
    current_password: Option<SecretString>,
}

type Service = BankDetailsService<DynamoReads, WritePath, DynamoLogins, DynamoThrottle, SesMailer, SystemClock>;

struct Api {
    reads: DynamoReads,
    service: Service,
    auth: LiveAuthenticator,
    change_schema: Validator,
    revocation_schema: Validator,
}

impl Api {
    async fn handle(&self, req: Request) -> Result<Response<Body>, Infallible> {
        serve(req, |req, method, path, id| async move {
            match (method, path) {
                (Method::GET, path) if path.ends_with("/bank-details") => self.bank_details(&req, &path, &id).await,
                (Method::PUT, path) if path.ends_with("/bank-details") => self.change(&req, &path, &id).await,
                (Method::DELETE, path) if path.ends_with("/direct-debit-mandate") => {
                    self.revoke(&req, &path, &id).await
                }
                _ => Err(Problem::not_found()),
            }
        })
        .await
    }

    async fn bank_details(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let account = path_param(path, "/v1/contract-accounts/", "/bank-details", AccountNumber::parse)
            .ok_or_else(Problem::not_found)?;
        let details = self.reads.bank_details(&caller, &account).await.map_err(|e| Problem::unexpected(id, &e))?;
        Ok(json_response(StatusCode::OK, &BankDetailsView::from(details.ok_or_else(Problem::not_found)?), id))
    }

    async fn change(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let account = path_param(path, "/v1/contract-accounts/", "/bank-details", AccountNumber::parse)
            .ok_or_else(Problem::not_found)?;
        let key = idempotency_key(req)?;
        let (body, raw) = read_json::<ChangeBody>(req, &self.change_schema)?;
        let change = BankChange {
            payment_method: body.payment_method,
            bank_account: body.bank_account.map(Into::into),
            payout_account: match body.payout_account {
                None => Change::Keep,
                Some(None) => Change::Clear,
                Some(Some(a)) => Change::Set(a.into()),
            },
            sepa_mandate: body.sepa_mandate_text_version.filter(|_| body.sepa_mandate_accepted),
        };
        let answer = self
            .service
            .change(
                &caller,
                &account,
                change,
                body.current_password.as_ref(),
                key.map(|k| (k, fingerprint_unconfirmed(&raw))),
            )
            .await
            .map_err(|e| problems::change(e, id))?;
        Ok(json_response(StatusCode::ACCEPTED, &answer, id))
    }

    async fn revoke(&self, req: &Request, path: &str, id: &str) -> Result<Response<Body>, Problem> {
        let caller = authenticate(&self.auth, req, Access::Regular, id).await?;
        let account = path_param(path, "/v1/contract-accounts/", "/direct-debit-mandate", AccountNumber::parse)
            .ok_or_else(Problem::not_found)?;
        let key = idempotency_key(req)?;
        let (body, raw) = if req.body().is_empty() {
            (RevocationBody::default(), Value::Null)
        } else {
            read_json::<RevocationBody>(req, &self.revocation_schema)?
        };
        let answer = self
            .service
            .revoke_mandate(
                &caller,
                &account,
                body.current_password.as_ref(),
                key.map(|k| (k, fingerprint_unconfirmed(&raw))),
            )
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
        reads: live.reads(),
        service: BankDetailsService {
            reads: live.reads(),
            writer: live.writer(),
            confirmation: live.confirmation(),
            mailer: live.mailer(),
            clock: SystemClock,
        },
        auth: live.authenticator(),
        change_schema: schemas::compile("bank-details-change.request.schema.json")?,
        revocation_schema: schemas::compile("mandate-revocation.request.schema.json")?,
    };
    run(service_fn(|req| api.handle(req))).await
}
