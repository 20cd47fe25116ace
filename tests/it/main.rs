//! Every integration and end-to-end test, in one binary with a module per
//! area (as cargo and ripgrep do): the crate is linked once, not once per
//! area, and the testbed comes up once per `cargo test` run, shared by the
//! `node` tests and the `e2e` scenarios (see `common`: the `node` tests
//! share it with each other, a scenario has it alone).
//!
//! Run one area with `cargo test --test it <module>::`, e.g.
//! `cargo test --test it plan::` or, as root, `cargo test --test it node::`.
//! A new area is a module here, not a new file at the top of `tests/`
//! ([`only_this_binary_under_tests`] fails on one).

mod common;
mod plan_support;
mod support;

mod cli_conventions;
mod cli_plan;
mod config;
mod demo;
mod e2e;
mod history;
mod jobs;
mod leader_docker;
mod leader_process;
mod manifest_conformance;
mod manifest_invalid;
mod manifest_rules;
mod manifest_valid;
mod node;
mod node_config;
mod node_volumes;
mod plan;
mod plan_jobs;
mod plan_props;
mod plan_scheduler;
mod plan_stateful;
mod plan_storage;
mod pods;
mod proxy;
mod proxy_dns;
mod proxy_stateful;
mod proxy_tls;
mod purity;
mod push;
mod repo;
mod rollback;
mod secrets_cli;
mod services;
mod storage;
mod validate;
mod volume_delete;

/// A `tests/*.rs` file (or `tests/*/main.rs`) would be a test binary of
/// its own: the whole crate linked again and, for a testbed test, a
/// testbed of its own.
#[test]
fn only_this_binary_under_tests() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let others: Vec<String> = std::fs::read_dir(&tests)
        .expect("tests/ is readable")
        .map(|entry| entry.expect("an entry of tests/").path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "rs") || path.join("main.rs").is_file()
        })
        .filter(|path| !path.ends_with("it"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        others.is_empty(),
        "{others:?}: other test binaries than tests/it; make each a module of tests/it/main.rs"
    );
}
