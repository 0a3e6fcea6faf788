//! What every function shares beyond the domain: typed configuration, the AWS clients,
//! the DynamoDB and SQS adapters of the domain's ports (the one write path and its relay
//! among them), the CRM import, and the HTTP glue (schemas, problem details, bodies).

/// For [`handle_routes!`].
pub use lambda_http;

pub mod aws;
pub mod config;
pub mod data_export;
pub mod dynamo;
pub mod files;
pub mod http;
pub mod identity;
pub mod import;
pub mod live;
pub mod metrics;
pub mod queue;
pub mod reads;
pub mod redrive;
pub mod request_log;
pub mod routes;
pub mod schemas;
pub mod sync;
pub mod telemetry;
pub mod write_path;
