//! Inventory service: an event-sourced inventory with a GraphQL API.
//!
//! A mutation becomes a command ([`application`]) on a pure decider ([`domain`]); its events
//! and an outbox row commit atomically to the event store ([`store`]: SQLite or DynamoDB). The
//! outbox relay publishes them on the bus ([`bus`]: in-process or RabbitMQ), whose durable
//! consumer, the live projector, writes the read models ([`projection`]: SQLite files or
//! DynamoDB tables, exactly once in effect per aggregate); at start-up the projections first
//! catch up with the store ([`projection::catch_up`]). Queries read the projections through
//! [`graphql`], served over HTTP ([`http`]) and WebSocket ([`ws`]); subscriptions follow the
//! bus.
//!
//! [`app`] is start-up: the one place that opens adapters from [`config`] and wires them
//! together; `main.rs` only parses the command line. Shared plumbing: [`dynamodb`] (client,
//! tables, migrate), [`auth`] (principals, roles, API keys), [`sqlite_pool`], [`sync`] (locks that outlive a panic), [`error`] (an error's
//! whole chain, for the log), [`metrics`],
//! [`cors`]. The whole map, with where each guarantee lives, is `docs/modules.md`.
pub mod app;
pub mod application;
pub mod archive;
pub mod auth;
pub mod bus;
pub mod config;
pub mod cors;
pub mod domain;
pub mod dynamodb;
pub mod error;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod projection;
pub mod sqlite_pool;
pub mod store;
pub mod sync;
pub mod ws;
