//! Matching a name typed by a customer against the CRM's name.
//!
//! Case (Unicode case folding: `GROSS` is `Groß`), surrounding and repeated whitespace and
//! Unicode composition are ignored; umlauts are compared as given (`Müller` is not
//! `Mueller`), as the CRM stores them.

use unicode_normalization::UnicodeNormalization;

/// The comparable form of a name: NFC, case-folded, single spaces.
pub fn normalize_name(raw: &str) -> String {
    let composed: String = raw.nfc().collect();
    caseless::default_case_fold_str(&composed.split_whitespace().collect::<Vec<_>>().join(" "))
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
    fn sharp_s_folds_like_upper_case_letters() {
        assert!(names_match("GROSS", "Groß"));
        assert!(names_match("STRAẞE", "straße"));
        assert!(names_match("ΣΟΦΊΑ", "σοφία"));
        assert!(!names_match("Gros", "Groß"));
    }

    #[test]
    fn an_empty_name_never_matches() {
        assert!(!names_match("   ", ""));
        assert!(!names_match("", "Mustermann"));
    }

    proptest! {
        #[test]
        fn padding_spacing_and_case_never_change_the_result(name in "[A-Za-zÄÖÜäöüß]{1,12}( [A-Za-zÄÖÜäöüß]{1,12}){0,2}", pad in "[ \t]{0,3}") {
            let shouted = format!("{pad}{}{pad}", name.to_uppercase().replace(' ', " \t "));
            let whispered = format!("{pad}{}{pad}", name.to_lowercase());
            prop_assert!(names_match(&shouted, &name));
            prop_assert!(names_match(&whispered, &name));
        }

        #[test]
        fn a_changed_letter_never_matches(name in "[a-zäöü]{2,12}", i in 0usize..12) {
            let i = i % name.chars().count();
            let changed: String = name.chars().enumerate().map(|(j, c)| if j == i { if c == 'x' { 'y' } else { 'x' } } else { c }).collect();
            prop_assert!(!names_match(&changed, &name));
        }
    }
}
