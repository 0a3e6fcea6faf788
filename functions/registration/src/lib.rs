//! Registration (capability 1): verify customer number and name, then create the portal
//! login and mail its initial password. A library as well as the function, so that tests can
//! drive its handler with API Gateway's events and a chosen policy.

pub mod api;
