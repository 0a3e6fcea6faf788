//! The documents inbox (Posteingang, capability 9, read side): the documents linked to the
//! customer, filtered by category and period; which categories and how far back are shown
//! is configuration. A document that is not shown cannot be downloaded either.

use crate::entities::{Document, iso_date};
use crate::ids::{AccountNumber, CustomerNumber, DocumentId};
use serde::{Deserialize, Serialize};
use time::{Date, Duration};

/// What the inbox shows. The module description has it configured in the CRM: EVI sends it
/// as `inboxConfiguration` (inbound sync or export); without one, the deployment's template
/// parameters apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboxPolicy {
    /// Categories shown; `None` shows every category.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// How far back documents are shown; `None` shows all.
    #[serde(default)]
    pub max_age_days: Option<u32>,
    /// Another attribute (Merkmal) a shown document must have: one of these values.
    #[serde(default)]
    pub attribute: Option<AttributeFilter>,
}

/// Shows only documents whose attribute `name` has one of `values`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeFilter {
    pub name: String,
    pub values: Vec<String>,
}

/// Where the CRM's inbox configuration is kept: a settings entry of the code-list table,
/// under a list name no code list can have (and the catalog never serves).
pub const SETTINGS_LIST: &str = "#settings";
pub const INBOX_SETTING: &str = "inbox";

/// An attribute name: 1-40 letters, digits or `_`.
pub fn is_attribute_name(name: &str) -> bool {
    (1..=40).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An attribute value: 1-100 characters, no control characters.
pub fn is_attribute_value(value: &str) -> bool {
    (1..=100).contains(&value.chars().count()) && !value.chars().any(char::is_control)
}

/// A document's attributes: at most 20, each a name and a value as above.
pub fn check_attributes(attributes: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if attributes.len() > 20 {
        return Err("at most 20 attributes".into());
    }
    match attributes.iter().find(|(k, v)| !is_attribute_name(k) || !is_attribute_value(v)) {
        Some((k, _)) if !is_attribute_name(k) => Err("an attribute name is 1-40 letters, digits or _".into()),
        Some((k, _)) => Err(format!("attribute {k}: 1-100 characters without control characters")),
        None => Ok(()),
    }
}

impl InboxPolicy {
    pub fn shows(&self, document: &Document, today: Date) -> bool {
        let category = self.categories.as_ref().is_none_or(|c| c.iter().any(|c| c == &document.category));
        let recent = self.max_age_days.is_none_or(|days| document.date >= today - Duration::days(i64::from(days)));
        let attribute = self
            .attribute
            .as_ref()
            .is_none_or(|f| document.attributes.get(&f.name).is_some_and(|v| f.values.contains(v)));
        category && recent && attribute
    }

    /// The limits a configuration from the CRM must keep: at most 50 categories (keys such
    /// as INVOICE), at most 100 years, an attribute name with 1-20 values.
    pub fn check(&self) -> Result<(), String> {
        let key = |c: &String| (1..=40).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
        if self.categories.as_ref().is_some_and(|c| c.len() > 50 || !c.iter().all(key)) {
            return Err("categories: at most 50 keys of 1-40 capital letters or _".into());
        }
        if self.max_age_days.is_some_and(|d| d > 36_500) {
            return Err("maxAgeDays: at most 36500".into());
        }
        if let Some(f) = &self.attribute
            && (!is_attribute_name(&f.name)
                || !(1..=20).contains(&f.values.len())
                || !f.values.iter().all(|v| is_attribute_value(v)))
        {
            return Err("attribute: a name (1-40 letters, digits, _) and 1-20 values (1-100 characters)".into());
        }
        Ok(())
    }
}

/// The customer's filter (query parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxFilter {
    pub category: Option<String>,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

impl InboxFilter {
    fn matches(&self, d: &Document) -> bool {
        self.category.as_ref().is_none_or(|c| c == &d.category)
            && self.from.is_none_or(|from| d.date >= from)
            && self.to.is_none_or(|to| d.date <= to)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentView {
    pub document_id: DocumentId,
    pub customer_number: CustomerNumber,
    pub account_number: Option<AccountNumber>,
    pub category: String,
    #[serde(with = "iso_date")]
    pub date: Date,
    pub title: String,
    pub file_name: String,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxView {
    pub documents: Vec<DocumentView>,
}

/// The inbox: shown by the policy, matching the filter, newest first.
pub fn inbox(documents: Vec<Document>, policy: &InboxPolicy, filter: &InboxFilter, today: Date) -> InboxView {
    let mut shown: Vec<DocumentView> = documents
        .into_iter()
        .filter(|d| policy.shows(d, today) && filter.matches(d))
        .map(|d| DocumentView {
            document_id: d.document_id,
            customer_number: d.partner_number,
            account_number: d.account_number,
            category: d.category,
            date: d.date,
            title: d.title,
            file_name: d.file_name,
            media_type: d.media_type,
        })
        .collect();
    shown.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.document_id.cmp(&b.document_id)));
    InboxView { documents: shown }
}

/// Where a document's file is kept: under its customer, by its id (never a client's name).
pub fn object_key(customer: &CustomerNumber, document: &DocumentId) -> String {
    format!("documents/{customer}/{document}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::parse_export;
    use time::macros::date;

    fn erikas() -> Vec<Document> {
        let s = parse_export(include_str!("../../../fixtures/crm-demo.json")).unwrap();
        s.documents.into_iter().filter(|d| d.partner_number.as_str() == "1000001").collect()
    }

    #[test]
    fn the_policy_hides_categories_and_old_documents_and_the_filter_narrows() {
        let today = date!(2026 - 12 - 01);
        let all = inbox(erikas(), &InboxPolicy::default(), &InboxFilter::default(), today);
        assert_eq!(all.documents.len(), 5);
        assert_eq!(all.documents[0].document_id.as_str(), "D-2026-000104", "newest first");

        let policy = InboxPolicy {
            categories: Some(vec!["INVOICE".into(), "LETTER".into()]),
            max_age_days: Some(730),
            attribute: None,
        };
        let shown: Vec<String> = inbox(erikas(), &policy, &InboxFilter::default(), today)
            .documents
            .into_iter()
            .map(|d| d.document_id.to_string())
            .collect();
        assert_eq!(shown, ["D-2026-000104", "D-2025-000102"]);

        let filter = InboxFilter { category: Some("INVOICE".into()), from: Some(date!(2025 - 01 - 01)), to: None };
        let invoices = inbox(erikas(), &InboxPolicy::default(), &filter, today);
        assert_eq!(invoices.documents.len(), 1);
    }

    fn document(id: &str, category: &str, date: Date) -> Document {
        Document { document_id: DocumentId::parse(id).unwrap(), category: category.into(), date, ..erikas()[0].clone() }
    }

    #[test]
    fn the_age_limit_and_the_period_are_inclusive() {
        let today = date!(2026 - 12 - 01);
        let policy = InboxPolicy { categories: None, max_age_days: Some(30), attribute: None };
        assert!(policy.shows(&document("D-1", "INVOICE", date!(2026 - 11 - 01)), today), "exactly 30 days old");
        assert!(!policy.shows(&document("D-1", "INVOICE", date!(2026 - 10 - 31)), today));
        assert!(policy.shows(&document("D-1", "INVOICE", today), today));
        let categories =
            InboxPolicy { categories: Some(vec!["LETTER".into()]), max_age_days: Some(30), attribute: None };
        assert!(!categories.shows(&document("D-1", "INVOICE", today), today));
        assert!(!categories.shows(&document("D-1", "LETTER", date!(2026 - 10 - 31)), today));
        assert!(categories.shows(&document("D-1", "LETTER", today), today));

        let filter = InboxFilter { category: None, from: Some(date!(2026 - 11 - 01)), to: Some(date!(2026 - 11 - 30)) };
        assert!(filter.matches(&document("D-1", "INVOICE", date!(2026 - 11 - 01))));
        assert!(filter.matches(&document("D-1", "INVOICE", date!(2026 - 11 - 30))));
        assert!(!filter.matches(&document("D-1", "INVOICE", date!(2026 - 10 - 31))));
        assert!(!filter.matches(&document("D-1", "INVOICE", date!(2026 - 12 - 01))));
        let letters = InboxFilter { category: Some("LETTER".into()), ..filter };
        assert!(!letters.matches(&document("D-1", "INVOICE", date!(2026 - 11 - 15))));
        assert!(letters.matches(&document("D-1", "LETTER", date!(2026 - 11 - 15))));
    }

    #[test]
    fn the_crms_configuration_can_ask_for_another_attribute_within_limits() {
        let today = date!(2026 - 12 - 01);
        let mut portal = document("D-1", "LETTER", today);
        portal.attributes.insert("dispatch".into(), "PORTAL".into());
        let mut post = document("D-2", "LETTER", today);
        post.attributes.insert("dispatch".into(), "POST".into());
        let plain = document("D-3", "LETTER", today);
        let policy: InboxPolicy = serde_json::from_value(
            serde_json::json!({"categories": null, "maxAgeDays": null, "attribute": {"name": "dispatch", "values": ["PORTAL"]}}),
        )
        .unwrap();
        assert_eq!(policy.check(), Ok(()));
        assert_eq!(
            [&portal, &post, &plain].map(|d| policy.shows(d, today)),
            [true, false, false],
            "only documents with the value"
        );
        for bad in [
            serde_json::json!({"categories": ["invoice"]}),
            serde_json::json!({"maxAgeDays": 40000}),
            serde_json::json!({"attribute": {"name": "dispatch", "values": []}}),
            serde_json::json!({"attribute": {"name": "dis patch", "values": ["X"]}}),
            serde_json::json!({"attribute": {"name": "dispatch", "values": ["a\u{7}b"]}}),
        ] {
            let policy: InboxPolicy = serde_json::from_value(bad.clone()).unwrap();
            assert!(policy.check().is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<InboxPolicy>(serde_json::json!({"other": 1})).is_err());
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("dispatch".to_owned(), "PORTAL".to_owned());
        assert_eq!(check_attributes(&attributes), Ok(()));
        attributes.insert("bad name".to_owned(), "x".to_owned());
        assert!(check_attributes(&attributes).is_err());
    }

    #[test]
    fn the_inbox_is_newest_first_then_by_id_and_shows_what_policy_and_filter_let_through() {
        let today = date!(2026 - 12 - 01);
        let docs = vec![
            document("D-B", "INVOICE", date!(2026 - 11 - 01)),
            document("D-A", "INVOICE", date!(2026 - 11 - 01)),
            document("D-C", "LETTER", date!(2026 - 11 - 20)),
            document("D-D", "DUNNING", date!(2026 - 11 - 25)),
        ];
        let policy = InboxPolicy {
            categories: Some(vec!["INVOICE".into(), "LETTER".into()]),
            max_age_days: None,
            attribute: None,
        };
        let filter = InboxFilter { category: None, from: None, to: Some(date!(2026 - 11 - 20)) };
        let view = inbox(docs, &policy, &filter, today);
        let ids: Vec<&str> = view.documents.iter().map(|d| d.document_id.as_str()).collect();
        assert_eq!(ids, ["D-C", "D-A", "D-B"]);
        let d = &view.documents[0];
        assert_eq!(
            (d.customer_number.as_str(), d.title.as_str(), d.media_type.as_str()),
            ("1000001", "Jahresabrechnung 2023", "application/pdf")
        );
        assert_eq!(
            object_key(&CustomerNumber::parse("1000001").unwrap(), &DocumentId::parse("U-1").unwrap()),
            "documents/1000001/U-1"
        );
    }
}
