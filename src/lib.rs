//! Inventory service: an event-sourced inventory with a GraphQL API.
pub mod app;
pub mod application;
pub mod bus;
pub mod config;
pub mod cors;
pub mod domain;
pub mod dynamodb;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod projection;
pub mod sqlite_pool;
pub mod store;
pub mod sync;
pub mod ws;
