//! Inventory service: an event-sourced inventory with a GraphQL API.
pub mod domain;
