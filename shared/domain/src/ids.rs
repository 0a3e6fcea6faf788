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

    #[test]
    fn each_id_has_its_alphabet_and_length() {
        assert!(CustomerNumber::parse("1").is_ok() && CustomerNumber::parse("1234567890").is_ok());
        for bad in ["", "12345678901", "12a", "-1"] {
            assert!(CustomerNumber::parse(bad).is_err(), "{bad}");
        }
        assert!(AccountNumber::parse("123456789012").is_ok() && AccountNumber::parse("1234567890123").is_err());
        assert!(ContractNumber::parse("123456789012").is_ok() && ContractNumber::parse("5x").is_err());
        assert_eq!(InstallationId::parse(" A-7000001 ").unwrap().to_string(), "A-7000001");
        assert!(InstallationId::parse(&"A".repeat(20)).is_ok());
        for bad in ["", "a-7000001", "A_1", "A 1", &"A".repeat(21)] {
            assert!(InstallationId::parse(bad).is_err(), "{bad}");
        }
        assert!(ProductId::parse(&"P".repeat(40)).is_ok() && ProductId::parse(&"P".repeat(41)).is_err());
        assert!(DocumentId::parse("D-2026-000104").is_ok() && LoginId::parse("l-1").is_err());
        assert!(MeterNumber::parse(&"1".repeat(20)).is_ok() && MeterNumber::parse(&"1".repeat(21)).is_err());
        assert!(MeterNumber::parse("1EMH-1").is_err());
        assert!(RegisterCode::parse("HT_2").is_ok() && RegisterCode::parse("ht").is_err());
        assert!(RegisterCode::parse(&"X".repeat(16)).is_ok() && RegisterCode::parse(&"X".repeat(17)).is_err());
        assert_eq!(CustomerNumber::parse("x").unwrap_err().to_string(), "a customer number has 1 to 10 digits");
        assert_eq!(serde_json::from_str::<CustomerNumber>("\" 1000001\"").unwrap().as_str(), "1000001");
        assert!(serde_json::from_str::<CustomerNumber>("\"x\"").is_err());
    }

    #[test]
    fn malo_ids_start_with_a_digit_other_than_zero() {
        assert!(MaloId::parse("01234567890").is_err());
        assert!(MaloId::parse("51234567895 ").is_ok());
        assert!(MaloId::parse("512345678955").is_err());
        // The check digit weighs the digits at even positions twice.
        assert!(MaloId::parse("10000000001").is_err());
        assert!(MaloId::parse("10000000009").is_ok());
        assert!(MaloId::parse("11000000007").is_ok());
        assert!(MaloId::parse("10000000108").is_ok());
    }

    #[test]
    fn request_ids_are_random_uuids_and_keys_visible_ascii() {
        assert_ne!(RequestId::new_random(), RequestId::new_random());
        assert_ne!(RequestId::new_random().to_string(), "00000000-0000-0000-0000-000000000000");
        let id = RequestId::parse("B7C1E2D4-0F3A-4E5B-9C6D-7E8F9A0B1C2D").unwrap();
        assert_eq!(id.to_string(), "b7c1e2d4-0f3a-4e5b-9c6d-7e8f9a0b1c2d");
        assert!(RequestId::parse("not-a-uuid").is_err());
        assert_eq!(IdempotencyKey::parse("k-1!").unwrap().as_str(), "k-1!");
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse("schlüssel").is_err());
    }
}
