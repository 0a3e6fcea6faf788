//! Contract termination (capability 13): reason, date, final-bill address, final reading
//! and final-bill payment, confirmed like a bank-details change.

use http::StatusCode;
use jsonschema::Validator;
use lambda_http::{Body, Error, Response, run, service_fn};
use portal_domain::bank::AccountInput;
use portal_domain::clock::SystemClock;
use portal_domain::entities::{Address, PaymentMethod, iso_date};
use portal_domain::identity::sessions::Access;
use portal_domain::ids::{ContractNumber, MeterNumber, RegisterCode};
use portal_domain::plausibility::SubmittedValue;
use portal_domain::requests::fingerprint_unconfirmed;
use portal_domain::termination::{
    FinalBillAddress, FinalBillPayment, FinalReading, Termination, TerminationPolicy, TerminationService,
};
use portal_platform::http::Call;
use portal_platform::http::{Problem, problems};
use portal_platform::identity::{DynamoLogins, DynamoThrottle, SesMailer};
use portal_platform::live::{Live, LiveAuthenticator};
use portal_platform::reads::DynamoReads;
use portal_platform::schemas;
use portal_platform::write_path::WritePath;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::Deserialize;
use time::Date;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TerminationBody {
    reason: String,
    #[serde(with = "iso_date")]
    termination_date: Date,
    #[serde(default, with = "iso_date::option")]
    move_out_date: Option<Date>,
    final_bill_address: AddressChoice,
    readings: Vec<ReadingBody>,
    final_bill_payment: PaymentChoice,
    current_password: Option<SecretString>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
enum AddressChoice {
    Current,
    Other { name: Option<String>, address: Address },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
enum PaymentChoice {
    Keep,
    #[serde(rename_all = "camelCase")]
    New {
        payment_method: PaymentMethod,
        bank_account: Option<AccountBody>,
    },
}

#[derive(Deserialize)]
struct AccountBody {
    holder: String,
    iban: String,
    bic: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadingBody {
    meter_number: MeterNumber,
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

impl From<TerminationBody> for Termination {
    fn from(b: TerminationBody) -> Self {
        Self {
            reason: b.reason,
            termination_date: b.termination_date,
            move_out_date: b.move_out_date,
            final_bill_address: match b.final_bill_address {
                AddressChoice::Current => FinalBillAddress::Current,
                AddressChoice::Other { name, address } => FinalBillAddress::Other { name, address },
            },
            readings: b
                .readings
                .into_iter()
                .map(|r| FinalReading {
                    meter: r.meter_number,
                    reading_date: r.reading_date,
                    values: r
                        .values
                        .into_iter()
                        .map(|v| SubmittedValue { register: v.register, value: v.value })
                        .collect(),
                    confirmed_implausible: r.confirmed_implausible,
                })
                .collect(),
            payment: match b.final_bill_payment {
                PaymentChoice::Keep => FinalBillPayment::Keep,
                PaymentChoice::New { payment_method, bank_account } => FinalBillPayment::New {
                    payment_method,
                    bank_account: bank_account.map(|a| AccountInput { holder: a.holder, iban: a.iban, bic: a.bic }),
                },
            },
        }
    }
}

type Service = TerminationService<DynamoReads, WritePath, DynamoLogins, DynamoThrottle, SesMailer, SystemClock>;

struct Api {
    service: Service,
    auth: LiveAuthenticator,
    schema: Validator,
}

portal_platform::handle_routes!(Api, "termination", {
    TerminateContract => terminate,
    GetTerminationOptions => options,
});

impl Api {
    async fn terminate(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let contract = call.path("contractNumber", ContractNumber::parse)?;
        let (mut body, key) = call.keyed_json_by::<TerminationBody>(&self.schema, fingerprint_unconfirmed)?;
        let password = body.current_password.take();
        let answer = self
            .service
            .terminate(&caller, &contract, body.into(), password.as_ref(), key)
            .await
            .map_err(|e| problems::change(e, &call.id))?;
        call.answer(StatusCode::ACCEPTED, &answer)
    }

    async fn options(&self, call: &Call) -> Result<Response<Body>, Problem> {
        let caller = call.caller(&self.auth, Access::Regular).await?;
        let contract = call.path("contractNumber", ContractNumber::parse)?;
        let answer = self.service.options(&caller, &contract).await.map_err(|e| problems::change(e, &call.id))?;
        call.answer(StatusCode::OK, &answer)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    portal_platform::telemetry::init();
    let live = Live::from_env().await?;
    let api = Api {
        service: TerminationService {
            reads: live.reads(),
            writer: live.writer(),
            confirmation: live.confirmation(),
            mailer: live.mailer(),
            clock: SystemClock,
            policy: TerminationPolicy { readings: live.config.readings, ..TerminationPolicy::default() },
        },
        auth: live.authenticator(),
        schema: schemas::compile("termination.request.schema.json")?,
    };
    run(service_fn(|req| api.handle(req))).await
}
