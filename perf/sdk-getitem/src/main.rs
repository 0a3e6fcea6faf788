//! The size reference of `scripts/perf`: what the AWS SDK costs before any of our code — its
//! configuration, the HTTPS client every function uses, one DynamoDB client and one GetItem.

use aws_sdk_dynamodb::types::AttributeValue;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(portal_platform::aws::http_client())
        .load()
        .await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::args().nth(1).unwrap_or_default();
    let found = dynamo.get_item().table_name(table).key("id", AttributeValue::S("1".to_owned())).send().await;
    println!("{}", found.is_ok());
}
