//! The portal's domain: CRM entities as typed values, the rules that decide every
//! customer request, and the ports through which the rules reach storage and messaging.
//!
//! Nothing here knows about AWS or HTTP. Values are parsed at the edge into the types
//! below (`CustomerNumber`, `MeterValue`, `MaloId`, …), so an invalid value cannot exist
//! past it.

pub mod bank;
pub mod billing;
pub mod budgets;
pub mod changes;
pub mod clock;
pub mod consumption;
pub mod contact;
pub mod customer_data;
pub mod dashboard;
pub mod data_export;
pub mod documents;
pub mod entities;
pub mod export;
pub mod identification;
pub mod identity;
pub mod ids;
pub mod installments;
pub mod logins;
pub mod messages;
pub mod meter_reading;
pub mod names;
pub mod plausibility;
pub mod ports;
pub mod reads;
pub mod requests;
pub mod sync;
pub mod termination;
pub mod uploads;

pub mod memory;

#[cfg(test)]
mod testkit;
