//! Configuration, read once from the environment. Table and queue names come from the
//! SAM template (`infra/template.yaml`, `Globals.Function.Environment`).

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// Physical names of the mirror and transaction tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub business_partners: String,
    pub contract_accounts: String,
    pub bank_details: String,
    pub contracts: String,
    pub installations: String,
    pub meters: String,
    pub meter_readings: String,
    pub installment_plans: String,
    pub documents: String,
    pub products: String,
    pub code_lists: String,
    pub portal_logins: String,
    pub activities: String,
    pub meter_reading_submissions: String,
    pub outbox: String,
    pub idempotency_keys: String,
    pub rate_limits: String,
    pub sessions: String,
    pub one_time_tokens: String,
    pub login_claims: String,
    pub portal_login_requests: String,
    pub contact_data_changes: String,
    pub bank_details_changes: String,
    pub billing_address_changes: String,
    pub installment_changes: String,
    pub terminations: String,
    pub messages: String,
    pub document_uploads: String,
}

impl Tables {
    /// The transaction table of a request type.
    pub fn record_table(&self, kind: portal_domain::requests::RequestKind) -> &str {
        use portal_domain::requests::RequestKind as K;
        match kind {
            K::MeterReadingSubmission => &self.meter_reading_submissions,
            K::PortalRegistration | K::AccountDeletion | K::CustomerNumberAdded => &self.portal_login_requests,
            // The customer's own data: contact data, and name and address.
            K::ContactDataChange | K::CustomerDataChange => &self.contact_data_changes,
            K::BankDetailsChange | K::MandateRevocation => &self.bank_details_changes,
            K::BillingAddressChange => &self.billing_address_changes,
            K::InstallmentChange => &self.installment_changes,
            K::ContractTermination => &self.terminations,
            K::Message => &self.messages,
            K::DocumentUpload => &self.document_uploads,
        }
    }

    /// Every transaction table, once.
    pub fn record_tables(&self) -> [&str; 9] {
        [
            &self.meter_reading_submissions,
            &self.portal_login_requests,
            &self.contact_data_changes,
            &self.bank_details_changes,
            &self.billing_address_changes,
            &self.installment_changes,
            &self.terminations,
            &self.messages,
            &self.document_uploads,
        ]
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Arc<Tables>,
    pub requests_queue_url: String,
    /// Dead-letter queue of the requests queue (for the redrive command).
    pub requests_dead_letter_url: String,
    /// Where the CRM publishes entity changes and request status.
    pub inbound_queue_url: String,
    pub inbound_dead_letter_url: String,
    /// Where the request path hands password-reset requests to the worker that mails them.
    pub password_reset_queue_url: String,
    /// Identification attempts per customer number, source address and deployment
    /// (`ANONYMOUS_ATTEMPTS_PER_HOUR`, `FAILURES_PER_ADDRESS_PER_HOUR`, `FAILURES_PER_HOUR`).
    pub identification: portal_domain::identification::IdentificationLimits,
    /// Password-reset requests per username or e-mail address and hour (`RESETS_PER_NAME_PER_HOUR`).
    pub resets_per_name_per_hour: u32,
    /// Sender of the portal's e-mails.
    pub mail_from: String,
    /// New logins wait for approval by the CRM.
    pub registration_requires_approval: bool,
    /// What proves a customer at registration and when adding a customer number
    /// (`REGISTRATION_PROOF`: NAME, METER_OR_ACCOUNT or CRM_EMAIL).
    pub registration_proof: portal_domain::identification::RegistrationProof,
    /// How the notices to the CRM's address name customer service (`CUSTOMER_SERVICE_CONTACT`).
    pub customer_service_contact: String,
    /// Where document files are kept.
    pub documents_bucket: String,
    /// What the documents inbox shows.
    pub inbox: portal_domain::documents::InboxPolicy,
    pub installments: portal_domain::installments::InstallmentPolicy,
    /// The plausible range of a reading (`READING_LOWER_FACTOR`, `READING_UPPER_FACTOR`,
    /// `READING_MIN_DAYS`).
    pub readings: portal_domain::plausibility::ReadingPolicy,
    pub messages: portal_domain::messages::MessagePolicy,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds the configuration from any key/value source (the environment, a file).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let req = |k: &'static str| get(k).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(k));
        let tables = Tables {
            business_partners: req("TABLE_BUSINESS_PARTNERS")?,
            contract_accounts: req("TABLE_CONTRACT_ACCOUNTS")?,
            bank_details: req("TABLE_BANK_DETAILS")?,
            contracts: req("TABLE_CONTRACTS")?,
            installations: req("TABLE_INSTALLATIONS")?,
            meters: req("TABLE_METERS")?,
            meter_readings: req("TABLE_METER_READINGS")?,
            installment_plans: req("TABLE_INSTALLMENT_PLANS")?,
            documents: req("TABLE_DOCUMENTS")?,
            products: req("TABLE_PRODUCTS")?,
            code_lists: req("TABLE_CODE_LISTS")?,
            portal_logins: req("TABLE_PORTAL_LOGINS")?,
            activities: req("TABLE_ACTIVITIES")?,
            meter_reading_submissions: req("TABLE_METER_READING_SUBMISSIONS")?,
            outbox: req("TABLE_OUTBOX")?,
            idempotency_keys: req("TABLE_IDEMPOTENCY_KEYS")?,
            rate_limits: req("TABLE_RATE_LIMITS")?,
            sessions: req("TABLE_SESSIONS")?,
            one_time_tokens: req("TABLE_ONE_TIME_TOKENS")?,
            login_claims: req("TABLE_LOGIN_CLAIMS")?,
            portal_login_requests: req("TABLE_PORTAL_LOGIN_REQUESTS")?,
            contact_data_changes: req("TABLE_CONTACT_DATA_CHANGES")?,
            bank_details_changes: req("TABLE_BANK_DETAILS_CHANGES")?,
            billing_address_changes: req("TABLE_BILLING_ADDRESS_CHANGES")?,
            installment_changes: req("TABLE_INSTALLMENT_CHANGES")?,
            terminations: req("TABLE_TERMINATIONS")?,
            messages: req("TABLE_MESSAGES")?,
            document_uploads: req("TABLE_DOCUMENT_UPLOADS")?,
        };
        let amount = |k: &'static str, default: &str| -> Result<rust_decimal::Decimal, ConfigError> {
            let v = get(k).filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned());
            v.trim().parse().map_err(|_| ConfigError::Invalid(k, v))
        };
        let defaults = portal_domain::plausibility::ReadingPolicy::default();
        let readings = portal_domain::plausibility::ReadingPolicy {
            lower_factor: amount("READING_LOWER_FACTOR", &defaults.lower_factor.to_string())?,
            upper_factor: amount("READING_UPPER_FACTOR", &defaults.upper_factor.to_string())?,
            min_days: match get("READING_MIN_DAYS").filter(|v| !v.trim().is_empty()) {
                None => defaults.min_days,
                Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid("READING_MIN_DAYS", v))?,
            },
            ..defaults
        };
        if readings.upper_factor <= readings.lower_factor {
            return Err(ConfigError::Invalid("READING_UPPER_FACTOR", readings.upper_factor.to_string()));
        }
        let installments = portal_domain::installments::InstallmentPolicy {
            min_amount: amount("INSTALLMENT_MIN_AMOUNT", "5.00")?,
            max_amount: amount("INSTALLMENT_MAX_AMOUNT", "5000.00")?,
            ..Default::default()
        };
        let messages = portal_domain::messages::MessagePolicy {
            delegation: match get("MESSAGE_DELEGATION") {
                None => portal_domain::requests::Delegation::None,
                Some(v) => portal_domain::requests::Delegation::parse(&v)
                    .ok_or_else(|| ConfigError::Invalid("MESSAGE_DELEGATION", v.clone()))?,
            },
            default_department: get("MESSAGE_DEFAULT_DEPARTMENT")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "kundenservice".to_owned()),
            anonymous_per_hour: match get("ANONYMOUS_MESSAGES_PER_HOUR") {
                None => 5,
                Some(v) => match v.parse::<u32>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(ConfigError::Invalid("ANONYMOUS_MESSAGES_PER_HOUR", v)),
                },
            },
        };
        let limit = |k: &'static str, default: u32| match get(k) {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(ConfigError::Invalid(k, v)),
            },
        };
        let identification = portal_domain::identification::IdentificationLimits {
            per_customer_per_hour: limit("ANONYMOUS_ATTEMPTS_PER_HOUR", 10)?,
            budgets: portal_domain::budgets::FailureBudgets {
                per_address_per_hour: limit("FAILURES_PER_ADDRESS_PER_HOUR", 20)?,
                global_per_hour: limit("FAILURES_PER_HOUR", 5_000)?,
            },
        };
        let resets_per_name_per_hour = limit("RESETS_PER_NAME_PER_HOUR", 3)?;
        let requires_approval = match get("REGISTRATION_REQUIRES_APPROVAL").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(ConfigError::Invalid("REGISTRATION_REQUIRES_APPROVAL", other.to_owned())),
        };
        let registration_proof = match get("REGISTRATION_PROOF").filter(|v| !v.is_empty()) {
            None => portal_domain::identification::RegistrationProof::default(),
            Some(v) => portal_domain::identification::RegistrationProof::parse(&v)
                .ok_or(ConfigError::Invalid("REGISTRATION_PROOF", v))?,
        };
        let customer_service_contact = get("CUSTOMER_SERVICE_CONTACT")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| portal_domain::identity::notices::DEFAULT_CUSTOMER_SERVICE.to_owned());
        let categories = get("INBOX_CATEGORIES")
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect());
        let max_age_days = match get("INBOX_MAX_AGE_DAYS").filter(|v| !v.trim().is_empty() && v != "0") {
            None => None,
            Some(v) => Some(v.parse::<u32>().map_err(|_| ConfigError::Invalid("INBOX_MAX_AGE_DAYS", v))?),
        };
        Ok(Self {
            documents_bucket: req("DOCUMENTS_BUCKET")?,
            inbox: portal_domain::documents::InboxPolicy { categories, max_age_days, attribute: None },
            tables: Arc::new(tables),
            requests_queue_url: req("REQUESTS_QUEUE_URL")?,
            requests_dead_letter_url: req("REQUESTS_DLQ_URL")?,
            inbound_queue_url: req("INBOUND_QUEUE_URL")?,
            inbound_dead_letter_url: req("INBOUND_DLQ_URL")?,
            password_reset_queue_url: req("PASSWORD_RESET_QUEUE_URL")?,
            identification,
            resets_per_name_per_hour,
            mail_from: req("MAIL_FROM")?,
            registration_requires_approval: requires_approval,
            registration_proof,
            customer_service_contact,
            installments,
            readings,
            messages,
        })
    }
}

impl Config {
    /// How registrations, and customer numbers added to a login, are proven and limited.
    pub fn registration_policy(&self) -> portal_domain::identity::registration::RegistrationPolicy {
        portal_domain::identity::registration::RegistrationPolicy {
            limits: self.identification,
            proof: self.registration_proof,
            requires_approval: self.registration_requires_approval,
            customer_service: self.customer_service_contact.clone(),
            ..Default::default()
        }
    }
}

/// The environment variable the template sets from a stack resource or parameter, by its
/// logical id: `BusinessPartnersTable` → `TABLE_BUSINESS_PARTNERS`, `RequestsQueue` →
/// `REQUESTS_QUEUE_URL`, `InboundDeadLetterQueue` → `INBOUND_DLQ_URL`, `DocumentsBucket` →
/// `DOCUMENTS_BUCKET`, parameter `MailFrom` → `MAIL_FROM`. Tools that work on a deployed
/// stack (the CRM import) find its resources by the stack's name with it.
pub fn env_key_of(logical_id: &str) -> String {
    if let Some(stem) = logical_id.strip_suffix("Table") {
        format!("TABLE_{}", screaming_snake(stem))
    } else if let Some(stem) = logical_id.strip_suffix("DeadLetterQueue") {
        format!("{}_DLQ_URL", screaming_snake(stem))
    } else if let Some(stem) = logical_id.strip_suffix("Queue") {
        format!("{}_QUEUE_URL", screaming_snake(stem))
    } else {
        screaming_snake(logical_id)
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::env_key_of;

    /// Every variable of the template's `Globals` that names a resource or a parameter
    /// follows the convention, so a stack's resources map to the configuration.
    #[test]
    fn the_template_names_its_variables_after_their_resources() {
        let template = include_str!("../../../infra/template.yaml");
        let globals = template.split("Variables:").nth(1).unwrap().split("\nResources:").next().unwrap();
        let mut checked = 0;
        for line in globals.lines() {
            let Some((key, value)) = line.trim().split_once(": !Ref ") else { continue };
            if value.starts_with("AWS::") {
                continue; // a pseudo parameter (the stack's name), not a resource
            }
            assert_eq!(env_key_of(value.trim()), key, "{line}");
            checked += 1;
        }
        assert!(checked > 30, "only {checked} variables found");
        assert_eq!(env_key_of("RequestsDeadLetterQueue"), "REQUESTS_DLQ_URL");
        assert_eq!(env_key_of("MeterReadingSubmissionsTable"), "TABLE_METER_READING_SUBMISSIONS");
    }
}
