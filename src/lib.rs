//! Inventory service: an event-sourced inventory with a GraphQL API.
pub mod domain;
pub mod sqlite_pool;
pub mod store;
pub mod application;
pub mod projection;
pub mod bus;
pub mod graphql;
