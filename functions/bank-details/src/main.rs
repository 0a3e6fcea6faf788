//! Bank details (capability 8): payment method and accounts with IBANs masked; the change
//! of payment method, payment account and payout account; the revocation of the
//! direct-debit mandate.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Error, Response, run, service_fn};
use portal_domain::bank::{AccountInput, BankChange, BankDetailsService};
use portal_domain::clock::SystemClock;
use portal_domain::contact::Change;
use portal_domain::entities::PaymentMethod;
use portal_domain::identity::sessions::Access;
use portal_domain::ids::AccountNumber;
use portal_domain::reads::{BankDetailsView, ScopedReads};
use portal_domain::requests::fingerprint_unconfirmed;
use portal_platform::http::Call;
use portal_platform::http::{Problem, idempotency_key, problems};
use portal_platform::identity::{DynamoLogins, DynamoThrottle, SesMailer};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

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

portal_platform::handle_routes!(Api, "bank-details", {
    GetBankDetails => bank_details,
    ChangeBankDetails => change,
    RevokeDirectDebitMandate => revoke,
});

impl Api {
    async fn bank_details(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let account = call.path("accountNumber", AccountNumber::parse)?;
        let details = self.reads.bank_details(&caller, &account).await.map_err(call.unexpected())?;
        call.answer(StatusCode::OK, &BankDetailsView::from(details.ok_or_else(Problem::not_found)?))
    }

    async fn change(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let account = call.path("accountNumber", AccountNumber::parse)?;
        let (body, key) = call.keyed_json_by::<ChangeBody>(&self.change_schema, fingerprint_unconfirmed)?;
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
            .change(&caller, &account, change, body.current_password.as_ref(), key)
            .await
            .map_err(|e| problems::change(e, &call.id))?;
        call.answer(StatusCode::ACCEPTED, &answer)
    }

    async fn revoke(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let account = call.path("accountNumber", AccountNumber::parse)?;
        // The body is optional (the password confirms the revocation where it is asked).
        let (body, key) = if call.req.body().is_empty() {
            let key = idempotency_key(&call.req)?;
            (RevocationBody::default(), key.map(|k| (k, fingerprint_unconfirmed(&Value::Null))))
        } else {
            call.keyed_json_by::<RevocationBody>(&self.revocation_schema, fingerprint_unconfirmed)?
        };
        let answer = self
            .service
            .revoke_mandate(&caller, &account, body.current_password.as_ref(), key)
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
