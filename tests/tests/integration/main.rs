//! Integration tests: the adapters and the whole write path against the AWS emulator
//! over HTTP with the real SDK (each test in its own emulator account), and end-to-end
//! tests against the functions served by `cargo lambda watch`.

mod budgets_e2e;
mod changes_e2e;
mod cost;
mod crm_year_e2e;
mod end_to_end;
mod faults;
mod identity_e2e;
mod identity_store;
mod import;
mod metrics;
mod plausibility_e2e;
mod reads_e2e;
mod registration_proof_e2e;
mod sync;
mod write_path;
