//! The CRM import on the emulator.

use integration_tests::{DEMO_EXPORT, isolated_stack};
use portal_domain::export::parse_export;
use portal_platform::import::write_snapshot;

#[tokio::test]
async fn importing_twice_gives_the_same_state() {
    let stack = isolated_stack().await;
    let snapshot = parse_export(DEMO_EXPORT).unwrap();
    let t = &stack.config.tables;
    write_snapshot(&stack.clients.dynamo, t, &snapshot).await.unwrap();
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

    write_snapshot(&stack.clients.dynamo, t, &snapshot).await.unwrap();
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
    // A reading of a single-tariff meter names a register the meter does not have.
    let readings = doc["meterReadings"].as_array_mut().unwrap();
    let reading = readings.iter_mut().find(|r| r["meterNumber"] == "1ITF0055501234").unwrap();
    reading["register"] = "NT".into();
    let err = parse_export(&doc.to_string()).unwrap_err();
    assert_eq!((err.entity, err.field.as_str()), ("meterReading", "register"));
    assert!(err.key.starts_with("1ITF0055501234/NT/"), "{err}");
    // The import validates before it writes: nothing reached the tables.
    assert_eq!(stack.count(&stack.config.tables.business_partners).await, 0);
}
