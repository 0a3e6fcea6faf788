//! The live wiring every function starts from: configuration and clients built once per
//! process, and the adapters of each port over them.

use crate::aws::Clients;
use crate::config::{Config, ConfigError};
use crate::dynamo::{DynamoDirectory, DynamoLimiter};
use crate::identity::{DynamoLogins, DynamoSessions, DynamoThrottle, DynamoTokens, SesMailer, SqsResetQueue};
use crate::write_path::WritePath;
use portal_domain::changes::Confirmation;
use portal_domain::clock::SystemClock;
use portal_domain::identity::access::{AccessService, LockoutPolicy, ResetDesk};
use portal_domain::identity::sessions::{Authenticator, SessionPolicy};

/// The session check of the deployed functions.
pub type LiveAuthenticator = Authenticator<DynamoSessions, DynamoLogins, SystemClock>;

/// Login, passwords and the mailing of resets.
pub type LiveAccess =
    AccessService<DynamoLogins, DynamoSessions, DynamoTokens, SesMailer, DynamoThrottle, DynamoLimiter, SystemClock>;

/// The request path of a password reset.
pub type LiveResetDesk = ResetDesk<DynamoLimiter, SqsResetQueue, SystemClock>;

#[derive(Debug, Clone)]
pub struct Live {
    pub config: Config,
    pub clients: Clients,
}

impl Live {
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { config: Config::from_env()?, clients: Clients::from_env().await })
    }

    pub fn directory(&self) -> DynamoDirectory {
        DynamoDirectory::new(self.clients.dynamo.clone(), self.config.tables.clone())
    }

    pub fn limiter(&self) -> DynamoLimiter {
        DynamoLimiter::new(self.clients.dynamo.clone(), &self.config.tables)
    }

    pub fn writer(&self) -> WritePath {
        WritePath::new(
            self.clients.dynamo.clone(),
            self.clients.sqs.clone(),
            self.config.tables.clone(),
            self.config.requests_queue_url.clone(),
        )
    }

    pub fn export(&self) -> crate::data_export::DynamoExport {
        crate::data_export::DynamoExport::new(self.clients.dynamo.clone(), self.config.tables.clone())
    }

    pub fn reads(&self) -> crate::reads::DynamoReads {
        crate::reads::DynamoReads::new(
            self.clients.dynamo.clone(),
            self.config.tables.clone(),
            self.clients.s3.clone(),
            self.config.documents_bucket.clone(),
        )
    }

    pub fn files(&self) -> crate::files::S3Files {
        crate::files::S3Files::new(self.clients.s3.clone(), self.config.documents_bucket.clone())
    }

    pub fn logins(&self) -> DynamoLogins {
        DynamoLogins::new(self.clients.dynamo.clone(), self.config.tables.clone())
    }

    pub fn sessions(&self) -> DynamoSessions {
        DynamoSessions::new(self.clients.dynamo.clone(), &self.config.tables)
    }

    pub fn tokens(&self) -> DynamoTokens {
        DynamoTokens::new(self.clients.dynamo.clone(), &self.config.tables)
    }

    pub fn throttle(&self) -> DynamoThrottle {
        DynamoThrottle::new(self.clients.dynamo.clone(), &self.config.tables)
    }

    pub fn mailer(&self) -> SesMailer {
        SesMailer::new(self.clients.ses.clone(), self.config.mail_from.clone())
    }

    pub fn access(&self) -> LiveAccess {
        AccessService {
            logins: self.logins(),
            sessions: self.sessions(),
            tokens: self.tokens(),
            mailer: self.mailer(),
            throttle: self.throttle(),
            clock: SystemClock,
            session_policy: SessionPolicy::default(),
            lockout: LockoutPolicy::default(),
            limiter: self.limiter(),
            budgets: self.config.identification.budgets,
        }
    }

    pub fn reset_desk(&self) -> LiveResetDesk {
        ResetDesk {
            limiter: self.limiter(),
            queue: SqsResetQueue::new(self.clients.sqs.clone(), self.config.password_reset_queue_url.clone()),
            clock: SystemClock,
            budgets: self.config.identification.budgets,
            per_name_per_hour: self.config.resets_per_name_per_hour,
        }
    }

    /// The confirmation sensitive changes ask for.
    pub fn confirmation(&self) -> Confirmation<DynamoLogins, DynamoThrottle, SystemClock> {
        Confirmation {
            logins: self.logins(),
            throttle: self.throttle(),
            clock: SystemClock,
            lockout: Default::default(),
        }
    }

    /// The one authentication step, as every function runs it.
    pub fn authenticator(&self) -> LiveAuthenticator {
        Authenticator {
            sessions: self.sessions(),
            logins: self.logins(),
            clock: SystemClock,
            policy: SessionPolicy::default(),
        }
    }
}
