//! The node proxy: what runs in the `flotilla-proxy` container on every
//! node (host networking) and serves the Services. It owns its listeners and
//! connections and nothing else: it never decides which endpoints exist
//! (the leader writes its [`table::Table`]) and never talks to Docker.

pub mod dns;
pub mod table;
