//! Meter readings (capability 6): the anonymous lookup of consumption points and meters,
//! the submission of a reading, and the logged-in readings and consumption. A library as
//! well as the function, so that `perf/warm` can time its handler with in-memory ports.

pub mod api;
