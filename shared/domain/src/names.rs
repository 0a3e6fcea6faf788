//! Matching a name typed by a customer against the CRM's name.
//!
//! Case, surrounding and repeated whitespace and Unicode composition are ignored;
//! umlauts are compared as given (`Müller` is not `Mueller`), as the CRM stores them.

use unicode_normalization::UnicodeNormalization;

/// The comparable form of a name: NFC, lower case, single spaces.
pub fn normalize_name(raw: &str) -> String {
    let composed: String = raw.nfc().collect();
    composed.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Whether a typed name identifies the CRM name.
pub fn names_match(typed: &str, stored: &str) -> bool {
    let typed = normalize_name(typed);
    !typed.is_empty() && typed == normalize_name(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn case_and_whitespace_are_ignored() {
        assert!(names_match("  müller-lüdenscheidt ", "Müller-Lüdenscheidt"));
        assert!(names_match("Bäckerei   Schmidt\tGmbH", "Bäckerei Schmidt GmbH"));
        assert!(names_match("MUSTERMANN", "Mustermann"));
    }

    #[test]
    fn umlauts_are_compared_as_given() {
        assert!(!names_match("Mueller-Luedenscheidt", "Müller-Lüdenscheidt"));
        assert!(!names_match("Muller-Ludenscheidt", "Müller-Lüdenscheidt"));
    }

    #[test]
    fn decomposed_umlauts_match_composed_ones() {
        assert!(names_match("Mu\u{0308}ller-Lu\u{0308}denscheidt", "Müller-Lüdenscheidt"));
    }

    #[test]
    fn an_empty_name_never_matches() {
        assert!(!names_match("   ", ""));
        assert!(!names_match("", "Mustermann"));
    }

    proptest! {
        #[test]
        fn padding_and_case_never_change_the_result(name in "[A-Za-zÄÖÜäöüß]{1,12}( [A-Za-zÄÖÜäöüß]{1,12}){0,2}", pad in " {0,3}") {
            let typed = format!("{pad}{}{pad}", name.to_uppercase().replace(' ', "  "));
            prop_assert!(names_match(&typed, &name) == (normalize_name(&name.to_uppercase()) == normalize_name(&name)));
        }
    }
}
