//! Usernames, e-mail addresses and passwords: the rules for new ones, argon2id hashing,
//! and initial passwords from the operating system's CSPRNG.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A portal username: 3 to 64 characters `a-z 0-9 . _ -`, compared and stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim().to_lowercase();
        let ok = (3..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if ok { Ok(Self(name)) } else { Err("a username has 3 to 64 letters, digits, dots, dashes or underscores") }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address: one `@`, a dotted domain, no spaces or control characters, at most
/// 254 characters. Deliverability is proven by the mail with the initial password.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && domain
                        .split('.')
                        .all(|label| !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-'))
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c));
        if valid { Ok(Self(email.to_owned())) } else { Err("not a valid e-mail address") }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address for logs: first character and domain only.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
            None => "***".to_owned(),
        }
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Why a new password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRule {
    TooShort,
    TooLong,
    EqualsUsername,
    Common,
    /// The new password is the current one.
    Unchanged,
}

impl PasswordRule {
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "PASSWORD_TOO_SHORT",
            Self::TooLong => "PASSWORD_TOO_LONG",
            Self::EqualsUsername => "PASSWORD_EQUALS_USERNAME",
            Self::Common => "PASSWORD_TOO_COMMON",
            Self::Unchanged => "PASSWORD_UNCHANGED",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::TooShort => "a password has at least 12 characters",
            Self::TooLong => "a password has at most 128 characters",
            Self::EqualsUsername => "the password must not be the username",
            Self::Common => "this password is too common; choose another",
            Self::Unchanged => "the new password must differ from the current one",
        }
    }
}

const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// A new password that passed every rule.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(candidate: &SecretString, username: &Username) -> Result<Self, PasswordRule> {
        let pw = candidate.expose_secret();
        let chars = pw.chars().count();
        if chars < 12 {
            return Err(PasswordRule::TooShort);
        }
        if chars > 128 {
            return Err(PasswordRule::TooLong);
        }
        let lower = pw.to_lowercase();
        if lower.trim() == username.as_str() {
            return Err(PasswordRule::EqualsUsername);
        }
        let first = lower.chars().next();
        let one_character = lower.chars().all(|c| Some(c) == first);
        if one_character || COMMON_PASSWORDS.lines().any(|common| common == lower) {
            return Err(PasswordRule::Common);
        }
        Ok(Self(candidate.clone()))
    }

    pub fn hash(&self) -> String {
        hash_password(&self.0)
    }
}

fn argon2id() -> Argon2<'static> {
    // OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19_456, 2, 1, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator does not fail on supported platforms; if it ever did, continuing
    // with zeros would be worse than stopping.
    getrandom::fill(&mut bytes).expect("operating system random generator");
    bytes
}

/// An argon2id PHC string with a fresh random salt.
pub fn hash_password(password: &SecretString) -> String {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes are a valid salt");
    argon2id()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("argon2 hashing with valid parameters")
}

/// A hash of an unknown random password: verified against when the username is unknown,
/// so that every login attempt does the same work.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$KmipQkbWlUXA+/AMCAkL3g$zsdi8/n7xOj78CSfEgYWOjfoo88GVj6pqthFIbXkDmE";

/// Whether `password` matches the stored PHC hash (false for a malformed hash).
pub fn verify_password(password: &SecretString, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .is_ok_and(|hash| argon2id().verify_password(password.expose_secret().as_bytes(), &hash).is_ok())
}

/// A random initial password of 16 characters from an alphabet without look-alikes.
pub fn initial_password() -> SecretString {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    // Rejection sampling keeps every character equally likely.
    let mut out = String::with_capacity(16);
    while out.len() < 16 {
        for b in random_bytes::<32>() {
            let limit = 256 - 256 % ALPHABET.len();
            if (b as usize) < limit && out.len() < 16 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    SecretString::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn password_rules() {
        let u = user("pschulz2026");
        assert_eq!(NewPassword::parse(&pw("kurz"), &u).err(), Some(PasswordRule::TooShort));
        assert_eq!(NewPassword::parse(&pw(&"x".repeat(129)), &u).err(), Some(PasswordRule::TooLong));
        assert_eq!(NewPassword::parse(&pw("PSchulz2026"), &u).err(), Some(PasswordRule::TooShort));
        assert_eq!(NewPassword::parse(&pw("pschulz2026-x"), &u).map(|_| ()), Ok(()));
        let long_user = user("petra.schulz.leipzig");
        assert_eq!(
            NewPassword::parse(&pw("Petra.Schulz.Leipzig"), &long_user).err(),
            Some(PasswordRule::EqualsUsername)
        );
        assert_eq!(NewPassword::parse(&pw("Passwort1234"), &u).err(), Some(PasswordRule::Common));
        assert_eq!(NewPassword::parse(&pw("aaaaaaaaaaaaaa"), &u).err(), Some(PasswordRule::Common));
        assert!(NewPassword::parse(&pw("Wärmepumpe im Keller 7"), &u).is_ok());
        // 12 characters are counted, not bytes.
        assert!(NewPassword::parse(&pw("äöüäöüäöüäöx"), &u).is_ok());
    }

    #[test]
    fn the_common_list_is_lower_case_and_long_enough_to_matter() {
        let entries: Vec<&str> = COMMON_PASSWORDS.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(entries.len() > 100);
        assert!(entries.iter().all(|e| e.chars().count() >= 12 && e.to_lowercase() == *e));
    }

    #[test]
    fn hashes_are_argon2id_with_the_required_parameters_and_verify() {
        let secret = pw("Wärmepumpe im Keller 7");
        let hash = hash_password(&secret);
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password(&secret, &hash));
        assert!(!verify_password(&pw("Wärmepumpe im Keller 8"), &hash));
        assert_ne!(hash, hash_password(&secret), "salts differ");
        assert!(!verify_password(&secret, "not a hash"));
        // The demo export's logins verify with the demo password.
        let demo = "$argon2id$v=19$m=19456,t=2,p=1$qGJLgEL9CIw1evduGLnfjw$uQkV0YxvT/8zrgMjjgIBFN5cNqaG5+SO9C1NI/9k5g0";
        assert!(verify_password(&pw("Demo-Passwort-2026"), demo));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn initial_passwords_are_random_and_long() {
        let a = initial_password();
        let b = initial_password();
        assert_eq!(a.expose_secret().chars().count(), 16);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().chars().all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
    }

    #[test]
    fn usernames_and_emails() {
        assert_eq!(user(" JMueller ").as_str(), "jmueller");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("-dash").is_err());
        assert!(Username::parse("mit leerzeichen").is_err());
        assert!(EmailAddress::parse("petra.schulz@example.org").is_ok());
        for bad in [
            "petra",
            "petra@",
            "@example.org",
            "petra@example",
            "pe tra@example.org",
            "a@b@example.org",
            "p<x>@example.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{:?}", EmailAddress::parse("petra.schulz@example.org").unwrap()), "p***@example.org");
    }
}
