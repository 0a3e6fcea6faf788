//! Identifiers of CRM objects. Each is a newtype with a private field and a fallible
//! `parse`, so that only well-formed keys ever reach a store.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub &'static str);

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $check:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a trimmed identifier; refuses anything outside the CRM's format.
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                let raw = raw.trim();
                let check: fn(&str) -> bool = $check;
                if check(raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(InvalidId($what))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn upper_alnum_dash(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

id_type!(
    /// Customer number: the key of the business partner (Geschäftspartner).
    CustomerNumber,
    |s| digits(s, 1, 10),
    "a customer number has 1 to 10 digits"
);
id_type!(
    /// Contract account number (Vertragskonto).
    AccountNumber,
    |s| digits(s, 1, 12),
    "a contract account number has 1 to 12 digits"
);
id_type!(
    /// Contract number (Vertrag).
    ContractNumber,
    |s| digits(s, 1, 12),
    "a contract number has 1 to 12 digits"
);
id_type!(
    /// Installation (Anlage) identifier.
    InstallationId,
    |s| upper_alnum_dash(s, 20),
    "an installation id has 1 to 20 upper-case letters, digits or dashes"
);
id_type!(
    /// Meter number (Zählernummer) as printed on the meter.
    MeterNumber,
    |s| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
    "a meter number has 1 to 20 upper-case letters or digits"
);
id_type!(
    /// Register code of a meter: `HT`, `NT`, `SINGLE`, …
    RegisterCode,
    |s| (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
    "a register code has 1 to 16 upper-case letters, digits or underscores"
);
id_type!(
    /// Market location id (Marktlokations-ID, MaLo-ID): 11 digits, the last a check digit.
    MaloId,
    malo_id_is_valid,
    "a MaLo-ID has 11 digits with a valid check digit"
);
id_type!(
    /// Product identifier from the CRM's product catalogue.
    ProductId,
    |s| upper_alnum_dash(s, 40),
    "a product id has 1 to 40 upper-case letters, digits or dashes"
);
id_type!(
    /// Document identifier.
    DocumentId,
    |s| upper_alnum_dash(s, 40),
    "a document id has 1 to 40 upper-case letters, digits or dashes"
);
id_type!(
    /// Portal login identifier.
    LoginId,
    |s| upper_alnum_dash(s, 40),
    "a login id has 1 to 40 upper-case letters, digits or dashes"
);

/// The MaLo-ID check digit (BDEW): digits at odd positions summed, digits at even
/// positions summed and doubled; the check digit completes the total to a multiple of 10.
fn malo_id_is_valid(s: &str) -> bool {
    if !digits(s, 11, 11) || s.starts_with('0') {
        return false;
    }
    let d: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
    let odd: u32 = d[..10].iter().step_by(2).sum();
    let even: u32 = d[1..10].iter().step_by(2).sum();
    let total = odd + 2 * even;
    (10 - total % 10) % 10 == d[10]
}

/// The id of one customer request, carried by its record, activities and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(uuid::Uuid);

impl RequestId {
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        uuid::Uuid::parse_str(raw).map(Self).map_err(|_| InvalidId("a request id is a UUID"))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A client-chosen `Idempotency-Key`: 1 to 128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId("an Idempotency-Key has 1 to 128 visible ASCII characters"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn demo_malo_ids_are_valid() {
        for id in ["51234567895", "52345678901", "53456789017", "54567890123", "55678901239", "56789012345"] {
            assert!(MaloId::parse(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn malo_id_refuses_wrong_check_digit_and_length() {
        assert!(MaloId::parse("51234567894").is_err());
        assert!(MaloId::parse("5123456789").is_err());
        assert!(MaloId::parse("5123456789a").is_err());
    }

    proptest! {
        #[test]
        fn exactly_one_check_digit_fits(body in "[1-9][0-9]{9}") {
            let valid = (0..10)
                .filter(|d| MaloId::parse(&format!("{body}{d}")).is_ok())
                .count();
            prop_assert_eq!(valid, 1);
        }

        #[test]
        fn customer_numbers_are_digits_only(s in "\\PC{0,12}") {
            let ok = CustomerNumber::parse(&s).is_ok();
            let t = s.trim();
            prop_assert_eq!(ok, !t.is_empty() && t.len() <= 10 && t.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn ids_trim_and_refuse_lower_case_meter_numbers() {
        assert_eq!(CustomerNumber::parse(" 1000001 ").unwrap().as_str(), "1000001");
        assert!(MeterNumber::parse("1emh0012345678").is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("with space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
    }
}
