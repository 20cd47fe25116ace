//! The reconciler's pure core: what the leader keeps in memory between
//! reconciles and the decisions made from it, with time passed in. Probe
//! bookkeeping (`probes`: Kubernetes' probe timing and thresholds), the
//! crash-loop restart back-off (`backoff`), and the cluster's status as
//! `flotilla status` and `/status` show it (`status`), the decisions made
//! from an observation (`decide`: holds, reverts, notes, old images), and
//! the text of a rollout note (`record`).
//!
//! Pure like `manifest`, `cluster` and `plan`: no I/O and no clock
//! (`tests/purity.rs`); the leader gathers the inputs and carries out what
//! is decided here.

pub(crate) mod backoff;
pub(crate) mod decide;
pub(crate) mod printable;
pub(crate) mod probes;
pub(crate) mod record;
pub(crate) mod run_record;
pub mod status;
pub(crate) mod time;
