//! flotilla: a container orchestrator in which Git is the API server.
//!
//! The pure core (`manifest`, `cluster`, `plan`, `reconcile`) computes; the shell (`repo`,
//! `node`, `leader`, `api`, `cli`) gathers inputs and carries out results.
//! See ARCHITECTURE.md for the map.
//!
//! `unreachable_pub` keeps an item that nothing outside the crate can reach
//! from being marked `pub`: such items are `pub(crate)`.
#![warn(unreachable_pub)]

pub mod api;
pub mod cli;
pub mod cluster;
pub mod leader;
pub mod manifest;
pub mod node;
pub mod plan;
pub mod proxy;
pub mod reconcile;
pub mod repo;
pub mod seal;
