//! ferrokeeper: a ZooKeeper server in Rust that stock ZooKeeper clients cannot tell from
//! Apache ZooKeeper 3.9. See `DESIGN.md` in the shared folder for the map of modules.

pub mod auth;
pub mod config;
pub mod jute;
pub mod persist;
pub mod quorum;
pub mod request;
pub mod server;
pub mod session;
pub mod tree;
pub mod watch;
