//! The node proxy: what runs in the `flotilla-proxy` container on every
//! node (host networking) and serves the Services. It owns its listeners and
//! connections and nothing else: it never decides which endpoints exist
//! (the leader writes its [`table::Table`]) and never talks to Docker.
//!
//! `daemon` runs it (control socket, listeners, tunnel, graceful stop);
//! `served` indexes a table by listen address; `balance` chooses an
//! endpoint (pure); `forward` connects with retries and copies bytes;
//! `http` is the HTTP mode; `tunnel` carries connections between nodes'
//! proxies; `proxy_protocol` is PROXY protocol v2; `counters` counts open
//! connections; `route` routes the service CIDR to the node; `tls` reads the
//! Ingress's certificates and chooses one by SNI; `control` is the client
//! of the control socket (`flotilla-proxy ctl`).

mod balance;
pub mod control;
mod counters;
pub mod daemon;
pub mod dns;
mod forward;
mod http;
pub mod ingress;
mod proxy_protocol;
mod route;
mod served;
pub mod table;
pub mod tls;
mod tunnel;
