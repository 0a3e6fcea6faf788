//! Customer data (capability 4): `GET /v1/customers/{customerNumber}`, the contact-data
//! change `PATCH /v1/customers/{customerNumber}/contact` and the customer-data change
//! (names, salutation, title, postal address) `PATCH /v1/customers/{customerNumber}`.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Error, Response, run, service_fn};
use portal_domain::clock::SystemClock;
use portal_domain::contact::{Change, ContactChange, ContactService, PhoneNumber};
use portal_domain::customer_data::{CustomerDataService, DataChange};
use portal_domain::entities::Address;
use portal_domain::identity::credentials::EmailAddress;
use portal_domain::identity::sessions::Access;
use portal_domain::ids::CustomerNumber;
use portal_domain::reads::{CustomerView, ScopedReads};
use portal_domain::requests::fingerprint_unconfirmed;
use portal_platform::http::Call;
use portal_platform::http::{Problem, problems};
use portal_platform::identity::{DynamoLogins, DynamoThrottle, SesMailer};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

struct Api {
    reads: DynamoReads,
    contact: ContactService<DynamoReads, WritePath, DynamoLogins, DynamoThrottle, SesMailer, SystemClock>,
    data: CustomerDataService<DynamoReads, WritePath, SystemClock>,
    auth: LiveAuthenticator,
    contact_schema: Validator,
    data_schema: Validator,
}

/// The customer-data change as sent: absent fields stay, a `null` title is removed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataChangeBody {
    salutation: Option<String>,
    #[serde(default, deserialize_with = "present")]
    title: Option<Option<String>>,
    first_name: Option<String>,
    last_name: Option<String>,
    address: Option<Address>,
}

/// A field that is present, `null` or not.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl From<DataChangeBody> for DataChange {
    fn from(b: DataChangeBody) -> Self {
        Self {
            salutation: b.salutation,
            title: match b.title {
                None => Change::Keep,
                Some(None) => Change::Clear,
                Some(Some(t)) => Change::Set(t),
            },
            first_name: b.first_name,
            last_name: b.last_name,
            address: b.address,
        }
    }
}

/// A field rule refused: the same 422 as every change's.
fn unprocessable(pointer: &str, code: &'static str, message: &str) -> Problem {
    problems::change(portal_domain::changes::ChangeError::invalid(pointer, code, message), "")
}

fn phone(body: &Map<String, Value>, name: &str) -> Result<Change<PhoneNumber>, Problem> {
    match body.get(name) {
        None => Ok(Change::Keep),
        Some(Value::Null) => Ok(Change::Clear),
        Some(v) => PhoneNumber::parse(v.as_str().unwrap_or_default())
            .map(Change::Set)
            .map_err(|m| unprocessable(&format!("/{name}"), "PHONE_INVALID", m)),
    }
}

/// The change from a validated body: absent fields stay, `null` removes a number.
fn contact_change(body: &Value) -> Result<ContactChange, Problem> {
    let empty = Map::new();
    let body = body.as_object().unwrap_or(&empty);
    let email = match body.get("email").and_then(Value::as_str) {
        None => None,
        Some(e) => Some(EmailAddress::parse(e).map_err(|m| unprocessable("/email", "EMAIL_INVALID", m))?),
    };
    Ok(ContactChange {
        phone: phone(body, "phone")?,
        mobile: phone(body, "mobile")?,
        fax: phone(body, "fax")?,
        email,
        notification_consent: body.get("notificationConsent").and_then(Value::as_bool),
        current_password: body.get("currentPassword").and_then(Value::as_str).map(|p| SecretString::from(p.to_owned())),
    })
}

portal_platform::handle_routes!(Api, "customer", {
    GetCustomer => customer,
    ChangeContactData => change_contact,
    RequestCustomerDataChange => change_data,
});

impl Api {
    async fn customer(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let customer = call.path("customerNumber", CustomerNumber::parse)?;
        let partner = self.reads.partner(&caller, &customer).await.map_err(call.unexpected())?;
        call.answer(StatusCode::OK, &CustomerView::from(partner.ok_or_else(Problem::not_found)?))
    }

    async fn change_contact(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let customer = call.path("customerNumber", CustomerNumber::parse)?;
        let (body, key) = call.keyed_json_by::<Value>(&self.contact_schema, fingerprint_unconfirmed)?;
        let change = contact_change(&body)?;
        let answer =
            self.contact.change(&caller, &customer, change, key).await.map_err(|e| problems::change(e, &call.id))?;
        call.answer(StatusCode::ACCEPTED, &answer)
    }

    async fn change_data(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let customer = call.path("customerNumber", CustomerNumber::parse)?;
        let (body, key) = call.keyed_json_by::<DataChangeBody>(&self.data_schema, fingerprint_unconfirmed)?;
        let answer =
            self.data.change(&caller, &customer, body.into(), key).await.map_err(|e| problems::change(e, &call.id))?;
        call.answer(StatusCode::ACCEPTED, &answer)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api {
        reads: live.reads(),
        contact: ContactService {
            reads: live.reads(),
            writer: live.writer(),
            confirmation: live.confirmation(),
            mailer: live.mailer(),
            clock: SystemClock,
        },
        data: CustomerDataService { reads: live.reads(), writer: live.writer(), clock: SystemClock },
        auth: live.authenticator(),
        contact_schema: schemas::compile("contact-change.request.schema.json")?,
        data_schema: schemas::compile("customer-data-change.request.schema.json")?,
    };
    run(service_fn(|req| api.handle(req))).await
}
