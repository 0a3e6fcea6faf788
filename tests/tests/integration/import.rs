//! The CRM import on the emulator.

use integration_tests::{DEMO_EXPORT, isolated_stack, s};
use portal_domain::export::parse_export;
use portal_platform::import::{ImportFailure, import_export, write_snapshot};

#[tokio::test]
async fn importing_twice_gives_the_same_state() {
    let stack = isolated_stack().await;
    let snapshot = parse_export(DEMO_EXPORT).unwrap();
    let t = &stack.config.tables;
    write_snapshot(&stack.clients, &stack.config, &snapshot).await.unwrap();
    let tables = [
        &t.business_partners,
        &t.contract_accounts,
        &t.bank_details,
        &t.contracts,
        &t.installations,
        &t.meters,
        &t.meter_readings,
        &t.installment_plans,
        &t.documents,
        &t.products,
        &t.code_lists,
        &t.portal_logins,
    ];
    let mut first = Vec::new();
    for table in tables {
        let mut items: Vec<String> = stack.items(table).await.into_iter().map(canonical).collect();
        items.sort();
        first.push(items);
    }
    assert_eq!(first[0].len(), 5);
    assert_eq!(first[6].len(), 180);

    write_snapshot(&stack.clients, &stack.config, &snapshot).await.unwrap();
    for (i, table) in tables.iter().enumerate() {
        let mut items: Vec<String> = stack.items(table).await.into_iter().map(canonical).collect();
        items.sort();
        assert_eq!(items, first[i], "{table} changed on the second import");
    }
}

/// An item as JSON with sorted keys, to compare states.
fn canonical(item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> String {
    serde_dynamo::from_item::<_, serde_json::Value>(item).unwrap().to_string()
}

#[tokio::test]
async fn a_bad_export_is_refused_whole_and_writes_nothing() {
    let stack = isolated_stack().await;
    let mut doc: serde_json::Value = serde_json::from_str(DEMO_EXPORT).unwrap();
    // The very last record is bad: a reading of a single-tariff meter names an NT register.
    let readings = doc["meterReadings"].as_array_mut().unwrap();
    let reading = readings.iter_mut().rev().find(|r| r["meterNumber"] == "1ITF0055501234").unwrap();
    reading["register"] = "NT".into();
    let t = &stack.config.tables;
    let err = import_export(&stack.clients, &stack.config, &doc.to_string()).await.unwrap_err();
    let ImportFailure::Invalid(err) = err else { panic!("{err}") };
    assert_eq!((err.entity, err.field.as_str()), ("meterReading", "register"));
    assert!(err.key.starts_with("1ITF0055501234/NT/"), "{err}");
    for table in
        [&t.business_partners, &t.contract_accounts, &t.contracts, &t.meters, &t.meter_readings, &t.portal_logins]
    {
        assert_eq!(stack.count(table).await, 0, "{table} was written");
    }
}

#[tokio::test]
async fn a_reimport_takes_the_crm_login_status_but_keeps_a_password_set_in_the_portal() {
    let stack = isolated_stack().await;
    let t = &stack.config.tables;
    import_export(&stack.clients, &stack.config, DEMO_EXPORT).await.unwrap();
    // The customer changed the password in the portal.
    stack
        .clients
        .dynamo
        .update_item()
        .table_name(&t.portal_logins)
        .key("loginId", aws_sdk_dynamodb::types::AttributeValue::S("L-0000002".into()))
        .update_expression("SET passwordHash = :h")
        .expression_attribute_values(":h", aws_sdk_dynamodb::types::AttributeValue::S("portal-set-hash".into()))
        .send()
        .await
        .unwrap();
    // EVI reactivates kweber.
    let mut doc: serde_json::Value = serde_json::from_str(DEMO_EXPORT).unwrap();
    doc["portalLogins"][1]["status"] = "AKTIV".into();
    import_export(&stack.clients, &stack.config, &doc.to_string()).await.unwrap();
    let login = stack.items(&t.portal_logins).await.into_iter().find(|l| s(l, "loginId") == "L-0000002").unwrap();
    assert_eq!(s(&login, "status"), "AKTIV");
    assert_eq!(s(&login, "passwordHash"), "portal-set-hash");
}

/// The import writes versions like the inbound sync: a re-run after the sync has started
/// applies only what is newer than the mirror. A change the sync applied after the export
/// was taken, and a deletion's tombstone, stay; a later export replaces them.
#[tokio::test]
async fn a_rerun_of_the_import_applies_only_what_is_newer_than_the_mirror() {
    use portal_platform::sync::Outcome;
    let stack = isolated_stack().await;
    let t = &stack.config.tables;
    let mut doc: serde_json::Value = serde_json::from_str(DEMO_EXPORT).unwrap();
    doc["version"] = 100.into();
    import_export(&stack.clients, &stack.config, &doc.to_string()).await.unwrap();
    assert_eq!(partner(&stack, "1000001").await.map(|p| s(&p, "lastName")), Some("Mustermann".into()));

    // The sync: a change of Erika (version 105) and the deletion of Jürgen (version 106).
    let mut erika = doc["businessPartners"][0].clone();
    erika["lastName"] = "Musterfrau".into();
    let changed = serde_json::json!({
        "messageType": "crm.entity-changed", "messageId": "bp-105", "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "businessPartner", "version": 105, "entity": erika,
    });
    assert_eq!(stack.sync().apply(&changed.to_string()).await.unwrap(), Outcome::Applied);
    let deleted = serde_json::json!({
        "messageType": "crm.entity-deleted", "messageId": "bp-106", "occurredAt": "2026-12-01T10:00:00Z",
        "entityType": "businessPartner", "version": 106, "key": "1000002",
    });
    assert_eq!(stack.sync().apply(&deleted.to_string()).await.unwrap(), Outcome::Applied);

    // A re-run of an export taken before (version 103, with a change of Klaus): Klaus
    // follows, Erika's newer change and Jürgen's deletion stay.
    doc["version"] = 103.into();
    doc["businessPartners"][3]["phone"] = "+49 40 555 0199".into();
    let report = import_export(&stack.clients, &stack.config, &doc.to_string()).await.unwrap();
    let written = report.iter().find(|(table, _)| table == &t.business_partners).unwrap().1;
    assert_eq!(written, 3, "5 partners, 2 newer in the mirror");
    assert_eq!(partner(&stack, "1000001").await.map(|p| s(&p, "lastName")), Some("Musterfrau".into()));
    let jurgen = partner(&stack, "1000002").await.unwrap();
    assert!(jurgen.contains_key(portal_platform::dynamo::TOMBSTONE), "the deletion stays");
    let klaus = partner(&stack, "1000004").await.unwrap();
    assert_eq!(s(&klaus, "phone"), "+49 40 555 0199");
    // The same export again writes nothing.
    let again = import_export(&stack.clients, &stack.config, &doc.to_string()).await.unwrap();
    let mirror = [&t.business_partners, &t.contracts, &t.meters, &t.meter_readings, &t.documents, &t.code_lists];
    assert!(again.iter().filter(|(table, _)| mirror.contains(&table)).all(|(_, n)| *n == 0), "{again:?}");

    // A later export (version 110) is newer than everything: it applies, Jürgen included.
    doc["version"] = 110.into();
    import_export(&stack.clients, &stack.config, &doc.to_string()).await.unwrap();
    assert_eq!(partner(&stack, "1000001").await.map(|p| s(&p, "lastName")), Some("Mustermann".into()));
    assert!(!partner(&stack, "1000002").await.unwrap().contains_key(portal_platform::dynamo::TOMBSTONE));
    // A version that is not a whole number is refused.
    doc["version"] = "soon".into();
    assert!(matches!(
        import_export(&stack.clients, &stack.config, &doc.to_string()).await,
        Err(ImportFailure::Invalid(e)) if e.field == "version"
    ));
}

async fn partner(
    stack: &integration_tests::Stack,
    number: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    stack.items(&stack.config.tables.business_partners).await.into_iter().find(|p| s(p, "partnerNumber") == number)
}
