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

/// The characters of initial passwords: no look-alikes (`0O1lI`).
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// The character a random byte stands for. Rejection sampling keeps every character
/// equally likely: 256 is no multiple of the alphabet's size, so the highest bytes (those
/// beyond the last whole multiple) stand for none.
fn alphabet_char(b: u8) -> Option<char> {
    let limit = 256 - 256 % ALPHABET.len();
    ((b as usize) < limit).then(|| ALPHABET[b as usize % ALPHABET.len()] as char)
}

/// A random initial password of 16 characters from an alphabet without look-alikes.
pub fn initial_password() -> SecretString {
    let mut out = String::with_capacity(16);
    while out.len() < 16 {
        for c in random_bytes::<32>().into_iter().filter_map(alphabet_char) {
            if out.len() < 16 {
                out.push(c);
            }
        }
    }
    SecretString::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn user(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn rule(candidate: &str, username: &Username) -> Option<PasswordRule> {
        NewPassword::parse(&pw(candidate), username).err()
    }

    #[test]
    fn password_rules() {
        let u = user("pschulz2026");
        assert_eq!(rule("kurz", &u), Some(PasswordRule::TooShort));
        assert_eq!(rule(&"x".repeat(129), &u), Some(PasswordRule::TooLong));
        assert_eq!(rule("PSchulz2026", &u), Some(PasswordRule::TooShort));
        assert_eq!(rule("pschulz2026-x", &u), None);
        let long_user = user("petra.schulz.leipzig");
        assert_eq!(rule("Petra.Schulz.Leipzig", &long_user), Some(PasswordRule::EqualsUsername));
        assert_eq!(rule("  Petra.Schulz.Leipzig ", &long_user), Some(PasswordRule::EqualsUsername), "padded");
        assert_eq!(rule("Passwort1234", &u), Some(PasswordRule::Common));
        assert_eq!(rule("DEMO-Passwort-2026", &u), Some(PasswordRule::Common), "the list is compared lower-case");
        assert_eq!(rule("aaaaaaaaaaaaaa", &u), Some(PasswordRule::Common));
        assert_eq!(rule("ÖÖÖÖÖÖÖÖÖÖÖÖö", &u), Some(PasswordRule::Common), "one character, any case");
        assert_eq!(rule("aaaaaaaaaaaaab", &u), None);
        assert!(NewPassword::parse(&pw("Wärmepumpe im Keller 7"), &u).is_ok());
        // 12 characters are counted, not bytes.
        assert!(NewPassword::parse(&pw("äöüäöüäöüäöx"), &u).is_ok());
    }

    #[test]
    fn a_password_has_12_to_128_characters() {
        let u = user("pschulz2026");
        let of_length = |n: usize| "Strompreis-".chars().cycle().take(n).collect::<String>();
        assert_eq!(rule(&of_length(11), &u), Some(PasswordRule::TooShort));
        assert_eq!(rule(&of_length(12), &u), None);
        assert_eq!(rule(&of_length(128), &u), None);
        assert_eq!(rule(&of_length(129), &u), Some(PasswordRule::TooLong));
        // Characters, not bytes: 128 umlauts are 256 bytes.
        let umlauts: String = "äöü".chars().cycle().take(128).collect();
        assert_eq!(rule(&umlauts, &u), None);
    }

    #[test]
    fn every_refusal_has_its_code_and_message() {
        let all = [
            (PasswordRule::TooShort, "PASSWORD_TOO_SHORT", "a password has at least 12 characters"),
            (PasswordRule::TooLong, "PASSWORD_TOO_LONG", "a password has at most 128 characters"),
            (PasswordRule::EqualsUsername, "PASSWORD_EQUALS_USERNAME", "the password must not be the username"),
            (PasswordRule::Common, "PASSWORD_TOO_COMMON", "this password is too common; choose another"),
            (PasswordRule::Unchanged, "PASSWORD_UNCHANGED", "the new password must differ from the current one"),
        ];
        for (rule, code, message) in all {
            assert_eq!((rule.code(), rule.message()), (code, message));
        }
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
        // A new password is hashed the same way.
        let new = NewPassword::parse(&secret, &user("pschulz")).unwrap().hash();
        assert!(new.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") && verify_password(&secret, &new), "{new}");
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
        assert_ne!(random_bytes::<16>(), [0u8; 16]);
    }

    #[test]
    fn initial_passwords_are_random_and_long() {
        let a = initial_password();
        let b = initial_password();
        assert_eq!(a.expose_secret().chars().count(), 16);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().chars().all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
        // Over many passwords every character of the alphabet shows up.
        let seen: std::collections::HashSet<char> =
            (0..200).flat_map(|_| initial_password().expose_secret().chars().collect::<Vec<_>>()).collect();
        assert_eq!(seen.len(), ALPHABET.len());
    }

    #[test]
    fn every_character_stands_for_equally_many_bytes() {
        assert_eq!(ALPHABET.len(), 57);
        let mut per_char: HashMap<char, usize> = HashMap::new();
        for b in 0..=255u8 {
            if let Some(c) = alphabet_char(b) {
                *per_char.entry(c).or_default() += 1;
            }
        }
        // 4 × 57 = 228 bytes stand for a character, each for exactly four; 228 to 255 for none.
        assert_eq!(per_char.len(), 57);
        assert!(per_char.values().all(|n| *n == 4), "{per_char:?}");
        assert_eq!(alphabet_char(0), Some('A'));
        assert_eq!(alphabet_char(56), Some('9'));
        assert_eq!(alphabet_char(57), Some('A'));
        assert_eq!(alphabet_char(227), Some('9'));
        assert_eq!(alphabet_char(228), None);
        assert_eq!(alphabet_char(255), None);
    }

    #[test]
    fn usernames_have_3_to_64_characters_and_start_with_a_letter_or_digit() {
        assert_eq!(user(" JMueller ").as_str(), "jmueller");
        assert_eq!(user("abc").as_str(), "abc");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert_eq!(user("p.schulz_2026-x").as_str(), "p.schulz_2026-x");
        assert!(Username::parse("1abc").is_ok());
        for bad in ["-dash", ".dot", "_under", "mit leerzeichen", "müller", "a+b", "a@b"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(user("JMueller").to_string(), "jmueller");
        assert_eq!(serde_json::from_str::<Username>("\" JMueller\"").unwrap().as_str(), "jmueller");
        assert!(serde_json::from_str::<Username>("\"-x\"").is_err());
    }

    #[test]
    fn usernames_and_emails() {
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

    #[test]
    fn an_email_address_has_one_at_and_a_dotted_domain_of_letters_digits_and_dashes() {
        let ok = |e: &str| EmailAddress::parse(e).map(|a| a.as_str().to_owned());
        assert_eq!(ok("  petra@example.org ").unwrap(), "petra@example.org");
        for good in ["p@my-host.example.org", "p@bücher.de", "p.s+tag@x1.de"] {
            assert!(ok(good).is_ok(), "{good}");
        }
        for bad in [
            "p@.example.org",
            "p@example.org.",
            "p@example..org",
            "p@exa_mple.org",
            "p@exa!mple.org",
            "p(x)@example.org",
            "p,x@example.org",
            "p\u{7}@example.org",
            "p\"@example.org",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        // At most 64 characters before the @ and 254 in all.
        let domain = format!("{}.org", "d".repeat(185));
        assert!(ok(&format!("{}@example.org", "l".repeat(64))).is_ok());
        assert!(ok(&format!("{}@example.org", "l".repeat(65))).is_err());
        assert_eq!(ok(&format!("{}@{domain}", "l".repeat(64))).unwrap().len(), 254);
        assert!(ok(&format!("{}@{domain}", "l".repeat(65))).is_err());
        assert!(ok(&format!("{}@d{domain}", "l".repeat(64))).is_err());
    }

    #[test]
    fn email_addresses_show_only_their_first_character_and_domain() {
        let e = EmailAddress::parse("petra.schulz@example.org").unwrap();
        assert_eq!(e.masked(), "p***@example.org");
        assert_eq!(serde_json::from_str::<EmailAddress>("\"petra.schulz@example.org\"").unwrap(), e);
        assert!(serde_json::from_str::<EmailAddress>("\"petra\"").is_err());
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"petra.schulz@example.org\"");
    }
}
