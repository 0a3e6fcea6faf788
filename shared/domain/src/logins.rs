//! The portal login as the mirror stores it, and what a single-use token is for: part of
//! the shared kernel, since the write path's requests carry them (`requests`); identity's
//! use cases (`identity`) build on them.

use crate::entities::{LoginStatus, timestamp};
use crate::ids::{CustomerNumber, LoginId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A portal login as the mirror stores it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRecord {
    pub login_id: LoginId,
    /// Lower-case; unique through the `USERNAME#` claim.
    pub username: String,
    pub email: String,
    pub status: LoginStatus,
    pub partner_numbers: Vec<CustomerNumber>,
    pub must_change_password: bool,
    pub password_hash: String,
    /// Expiry of an initial password.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "timestamp::option")]
    pub password_expires_at: Option<OffsetDateTime>,
    #[serde(with = "timestamp::serde")]
    pub created_at: OffsetDateTime,
    /// Raised by every password change and reset: a session opened under an older
    /// generation is refused by the session check at once.
    #[serde(default)]
    pub session_generation: u32,
}

impl std::fmt::Debug for LoginRecord {
    // Hash and e-mail stay out of every log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRecord")
            .field("login_id", &self.login_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// What a single-use token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenPurpose {
    Registration,
    PasswordReset,
}
