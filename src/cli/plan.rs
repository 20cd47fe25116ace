//! `flotilla plan`: what applying a revision would do, and why, before
//! anything changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use clap::Args;
use serde::Serialize;

use super::validate::{read_snapshot, render_diagnostics};
use super::{exit, short, Output, OutputFormat, SourceArgs};
use crate::cluster::{Contents, ObservedCluster, ObservedNode, Reachability};
use crate::manifest::model::{Node, NodeSpec, ObjectKey};
use crate::manifest::{self, DesiredState, SourceFile};
use crate::plan::{self, NodeCondition, Plan, RenderOptions};
use crate::repo;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Plan against an empty cluster with the capacities the Node manifests
    /// declare, contacting no node (for CI checks of a pull request).
    #[arg(long)]
    pub offline: bool,
    /// Contact only the nodes this revision already declares with the same
    /// connection settings (address, port, user, identity file, Docker
    /// socket, transport); the others are shown as not yet observed. The
    /// pre-receive hook passes the branch's current tip, so that a push
    /// cannot make the git host connect to addresses only it declares. The
    /// all-zero object id (a branch not created yet) declares no node.
    #[arg(long, value_name = "REV", conflicts_with = "offline")]
    pub observe_nodes_of: Option<String>,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 3 when
    /// part of the cluster could not be observed and nothing definite is to
    /// change, 4 when replicas are unschedulable, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub nodes: super::NodeArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanReport<'a> {
    commit: &'a str,
    deployed_commit: Option<&'a str>,
    /// False when no container label could be read and some declared node
    /// was not observed: what is deployed is unknown, not nothing.
    deployed_commit_known: bool,
    offline: bool,
    plan: &'a Plan,
    manifest_diff: &'a str,
    /// Per workload that rolls because a value it reads changed: the
    /// sources and keys (never values).
    config_changes: BTreeMap<String, Vec<crate::manifest::ConsumedChange>>,
}

/// Plans the revision `args` names against the cluster `observe` reports
/// (unless `--offline`), and prints it.
pub(super) fn run(
    args: &PlanArgs,
    observe: impl FnOnce(&DesiredState) -> anyhow::Result<ObservedCluster>,
    out: &mut Output,
) -> anyhow::Result<u8> {
    let (snapshot, policy) =
        read_snapshot(&args.source, |repository| default_rev(repository, out), out)?;
    let loaded = manifest::load(&snapshot.files);
    let refused = manifest::check_operator_policy(&loaded.state, &policy);
    if loaded.has_errors() || snapshot.has_errors() || !refused.is_empty() {
        let mut diagnostics = snapshot.diagnostics;
        diagnostics.extend(loaded.diagnostics);
        diagnostics.extend(refused);
        render_diagnostics(&diagnostics, out)?;
        anyhow::bail!(
            "{} is not valid: fix the errors above (see `flotilla validate`)",
            short(&snapshot.commit)
        );
    }

    let observed = if args.offline {
        plan::offline_cluster(&loaded.state)
    } else if let Some(rev) = &args.observe_nodes_of {
        let known = known_nodes(&args.source.repo, rev)?;
        observe_known_nodes(&loaded.state, &known, rev, observe)?
    } else {
        observe(&loaded.state)?
    };
    // Which runs of Jobs are recorded as finished: without the notes (a
    // clone that did not fetch them), their state is unknown, never guessed.
    let runs = match crate::repo::open(&args.source.repo) {
        Ok(repository) => crate::repo::runs_for_planning(&repository).unwrap_or_else(|error| {
            plan::Runs::Unknown(format!("the run records cannot be read: {error}"))
        }),
        Err(error) => plan::Runs::Unknown(format!("the run records cannot be read: {error}")),
    };
    let plan = plan::plan_with_runs(
        &loaded.state,
        &observed,
        &snapshot.commit,
        &runs,
        SystemTime::now(),
    );

    match args.output {
        OutputFormat::Json => {
            let deployed = Deployed::of(&observed, &plan);
            let mut config_changes = BTreeMap::new();
            let diff = match &deployed {
                Deployed::Commit(commit) => {
                    let files = deployed_manifests(&args.source.repo, commit);
                    config_changes =
                        config_changes_since_running(&args.source.repo, &observed, &loaded.state)
                            .into_iter()
                            .map(|(key, changes)| (key.to_string(), changes))
                            .collect();
                    plan::manifest_diff(&files, &snapshot.files)
                }
                Deployed::Nothing => plan::manifest_diff(&[], &snapshot.files),
                Deployed::Unknown => String::new(),
            };
            out.json(&PlanReport {
                commit: &snapshot.commit,
                deployed_commit: match &deployed {
                    Deployed::Commit(commit) => Some(commit),
                    _ => None,
                },
                deployed_commit_known: !matches!(deployed, Deployed::Unknown),
                offline: args.offline,
                plan: &plan,
                manifest_diff: &diff,
                config_changes,
            })?
        }
        OutputFormat::Text => print_plan(
            out,
            &args.source.repo,
            &Planned {
                files: &snapshot.files,
                desired: &loaded.state,
                plan: &plan,
                observed: &observed,
            },
            args.offline,
        )?,
    }
    Ok(if args.detailed_exitcode {
        detailed_exit_code(&plan)
    } else {
        exit::OK
    })
}

/// `--detailed-exitcode`: what a CI check must hear first. Unschedulable
/// replicas (4) outrank changes (2), which outrank an unknown state (3:
/// replicas held for, or nodes not observed, with nothing definite to
/// change); 0 only when the whole cluster was seen to match.
pub(super) fn detailed_exit_code(plan: &Plan) -> u8 {
    if !plan.unschedulable.is_empty() {
        exit::UNSCHEDULABLE
    } else if !plan.actions.is_empty() {
        exit::CHANGES
    } else if !plan.held.is_empty() || !unobserved_nodes(plan).is_empty() {
        exit::UNKNOWN
    } else {
        exit::OK
    }
}

/// The declared nodes whose state this plan did not observe: unreachable,
/// or absent from the observation. What runs there is unknown, so "no
/// changes" cannot be claimed for them.
pub(super) fn unobserved_nodes(plan: &Plan) -> Vec<&str> {
    plan.nodes
        .iter()
        .filter(|node| {
            matches!(
                node.condition,
                NodeCondition::Unreachable { .. } | NodeCondition::NotObserved
            )
        })
        .map(|node| node.name.as_str())
        .collect()
}

/// What `plan` plans without `--rev`: the tip of the default branch (see
/// [`repo::default_branch`]), which is what `apply` applies. Says so on
/// stderr when that is not the branch checked out.
fn default_rev(repository: &git2::Repository, out: &Output) -> anyhow::Result<String> {
    let branch = repo::default_branch(repository);
    if !repository.is_bare()
        && repo::checked_out_branch(repository).is_none()
        && repo::configured_branch(repository).is_none()
    {
        // A detached checkout, as CI systems make them (often with no
        // local branch at all): what is checked out is what to plan. When
        // the branch `apply` would apply is here and elsewhere, say so.
        let head = repository.head().ok().and_then(|head| head.target());
        let tip = repository
            .refname_to_id(&format!("refs/heads/{branch}"))
            .ok();
        if let (Some(head), Some(tip)) = (head, tip) {
            if head != tip {
                out.warn(format_args!(
                    "note: planning HEAD ({}, detached); `flotilla apply` applies branch \
                     {branch} ({}): --rev {branch} plans that",
                    short(&head.to_string()),
                    short(&tip.to_string())
                ));
            }
        }
        return Ok("HEAD".to_string());
    }
    let reference = format!("refs/heads/{branch}");
    if repository.refname_to_id(&reference).is_err() {
        anyhow::bail!(
            "branch {branch} (the default branch) not found in {}: name one with --rev",
            repository.path().display()
        );
    }
    if !repository.is_bare() {
        let checked_out = repo::checked_out_branch(repository);
        if checked_out.as_deref() != Some(branch.as_str()) {
            let head = match checked_out {
                Some(other) => format!("{other} is checked out"),
                None => "HEAD is detached".to_string(),
            };
            out.warn(format_args!(
                "note: planning branch {branch}, what `flotilla apply` applies ({head}): \
                 --rev HEAD plans what is checked out"
            ));
        }
    }
    Ok(reference)
}

/// The nodes `rev` declares, read as the leader would (a revision that is
/// not valid declares the nodes it could read). The all-zero object id,
/// which git hooks receive for a branch that does not exist yet, declares
/// none.
fn known_nodes(repo: &Path, rev: &str) -> anyhow::Result<Vec<Node>> {
    if !rev.is_empty() && rev.bytes().all(|b| b == b'0') {
        return Ok(Vec::new());
    }
    let repository = repo::open(repo)?;
    let snapshot = repo::read_revision(&repository, rev)?;
    Ok(manifest::load(&snapshot.files).state.nodes)
}

/// Observes the nodes of `desired` that `known` declares with the same
/// connection settings; every other node is unreachable, never seen, so
/// that the plan holds what may run there as unknown instead of guessing.
fn observe_known_nodes(
    desired: &DesiredState,
    known: &[Node],
    rev: &str,
    observe: impl FnOnce(&DesiredState) -> anyhow::Result<ObservedCluster>,
) -> anyhow::Result<ObservedCluster> {
    let (contactable, unknown): (Vec<Node>, Vec<Node>) =
        desired.nodes.iter().cloned().partition(|node| {
            known
                .iter()
                .any(|k| k.meta.name == node.meta.name && same_connection(&k.spec, &node.spec))
        });
    let mut observed = observe(&DesiredState {
        nodes: contactable,
        ..desired.clone()
    })?;
    let now = SystemTime::now();
    // The hook passes the branch's old tip: all zeros when nothing has landed.
    let landed = if rev.bytes().all(|b| b == b'0') {
        "nothing has landed yet, so no node is contacted".to_string()
    } else {
        format!(
            "{} does not declare it with these connection settings, and only nodes it declares are contacted",
            short(rev)
        )
    };
    for node in unknown {
        observed.nodes.insert(
            node.meta.name.clone(),
            ObservedNode {
                name: node.meta.name.clone(),
                reachability: Reachability::Unreachable {
                    since: now,
                    reason: format!("not yet observed: {landed}"),
                    contents: Contents::Unknown,
                },
                facts: None,
                containers: Vec::new(),
                volumes: Vec::new(),
            },
        );
    }
    Ok(observed)
}

/// Whether two Node specs reach the same Docker the same way.
fn same_connection(a: &NodeSpec, b: &NodeSpec) -> bool {
    a.transport == b.transport
        && a.address == b.address
        && a.port == b.port
        && a.user == b.user
        && a.identity_file == b.identity_file
        && a.docker_socket == b.docker_socket
}

/// A plan and what it was made from.
pub(super) struct Planned<'a> {
    pub files: &'a [SourceFile],
    pub desired: &'a DesiredState,
    pub plan: &'a Plan,
    pub observed: &'a ObservedCluster,
}

/// The plan as `flotilla plan` prints it: what it goes from and to, the
/// manifests' diff against the deployed commit (read from `repo`), why
/// workloads roll when a value they read changed, and the actions.
/// `flotilla apply` prints the same before asking.
pub(super) fn print_plan(
    out: &mut Output,
    repo: &Path,
    planned: &Planned<'_>,
    offline: bool,
) -> std::io::Result<()> {
    let Planned {
        files,
        desired,
        plan,
        observed,
    } = *planned;
    let target = short(&plan.commit);
    let mut config_changes = None;
    let (from, diff) = match Deployed::of(observed, plan) {
        Deployed::Commit(commit) => {
            let deployed = deployed_manifests(repo, &commit);
            config_changes = Some(config_changes_since_running(repo, observed, desired));
            (
                format!("deployed {}", short(&commit)),
                plan::manifest_diff(&deployed, files),
            )
        }
        Deployed::Nothing if offline => (
            "an empty cluster (offline)".to_string(),
            plan::manifest_diff(&[], files),
        ),
        Deployed::Nothing => (
            "nothing deployed".to_string(),
            plan::manifest_diff(&[], files),
        ),
        // No manifest diff: against what would it be?
        Deployed::Unknown => {
            let nodes = unobserved_nodes(plan);
            let nodes = match nodes.len() {
                1 => format!("node {}", nodes[0]),
                2..=3 => format!("nodes {}", nodes.join(", ")),
                count => format!("{count} nodes"),
            };
            (
                format!("an unknown deployment ({nodes} not observed; no manifest diff)"),
                String::new(),
            )
        }
    };
    out.line(format_args!("Planning {target} against {from}.\n"))?;
    // File names and contents come from commits: escapes are shown.
    let diff = repo::printable_text(&diff);
    let options = RenderOptions {
        colour: out.color(),
        manifest_diff: (!diff.is_empty()).then_some(&*diff),
        config_changes: config_changes.as_ref(),
    };
    out.text(plan::render(plan, options))
}

/// What is deployed, as far as the observation tells.
enum Deployed {
    /// The commit most containers carry.
    Commit(String),
    /// Every declared node observed, and none runs a managed container.
    Nothing,
    /// No container seen, and some declared node not observed: what runs
    /// there is unknown.
    Unknown,
}

impl Deployed {
    fn of(observed: &ObservedCluster, plan: &Plan) -> Deployed {
        match deployed_commit(observed) {
            Some(commit) => Deployed::Commit(commit),
            None if unobserved_nodes(plan).is_empty() => Deployed::Nothing,
            None => Deployed::Unknown,
        }
    }
}

/// The commit currently deployed, read from the containers' labels: of the
/// commits they name, the one most containers carry (ties broken by name, so
/// the answer is stable). `None` on an empty cluster.
fn deployed_commit(observed: &ObservedCluster) -> Option<String> {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for node in observed.nodes.values() {
        for container in &node.containers {
            *counts.entry(container.labels.commit.as_str()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(commit, _)| commit.to_string())
}

/// Why workloads roll because of a value they read: each workload against
/// the commit its own containers carry (the one most of them carry), not
/// the cluster's, since workloads roll out separately.
fn config_changes_since_running(
    repo: &Path,
    observed: &ObservedCluster,
    desired: &DesiredState,
) -> BTreeMap<ObjectKey, Vec<crate::manifest::ConsumedChange>> {
    let mut commits: BTreeMap<ObjectKey, BTreeMap<&str, usize>> = BTreeMap::new();
    for node in observed.nodes.values() {
        for container in &node.containers {
            let labels = &container.labels;
            let key = ObjectKey {
                kind: labels.kind,
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
            };
            *commits
                .entry(key)
                .or_default()
                .entry(labels.commit.as_str())
                .or_default() += 1;
        }
    }
    let mut states: BTreeMap<&str, DesiredState> = BTreeMap::new();
    let mut changes = BTreeMap::new();
    for (key, counts) in &commits {
        let Some(commit) = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(commit, _)| *commit)
        else {
            continue;
        };
        let running = states
            .entry(commit)
            .or_insert_with(|| manifest::load(&deployed_manifests(repo, commit)).state);
        if let (Some(before), Some(after)) = (running.workload(key), desired.workload(key)) {
            let listed = crate::manifest::consumed_changes(
                &before.spec.template.consumed,
                &after.spec.template.consumed,
            );
            if !listed.is_empty() {
                changes.insert(key.clone(), listed);
            }
        }
    }
    changes
}

/// The manifests of the deployed commit, for the diff. A commit the
/// repository does not have (history rewritten) gives an empty side and a
/// warning rather than failing the plan.
fn deployed_manifests(repo: &Path, commit: &str) -> Vec<SourceFile> {
    let read = repo::open(repo).and_then(|r| repo::read_revision(&r, commit));
    match read {
        Ok(snapshot) => snapshot.files,
        Err(error) => {
            tracing::warn!(%commit, %error, "deployed commit not readable; diffing against nothing");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::{Kind, ObjectKey};
    use crate::plan::{Action, Held, NodeStatus, Operation, Unschedulable};

    fn web() -> ObjectKey {
        ObjectKey {
            kind: Kind::Deployment,
            namespace: "default".into(),
            name: "web".into(),
        }
    }

    fn remove() -> Action {
        Action {
            object: web(),
            slot: 0,
            node: "n1".into(),
            template_hash: "5f2c9a1b7d".into(),
            rollout: false,
            reason: "scaled down".into(),
            operation: Operation::Remove {
                containers: Vec::new(),
            },
        }
    }

    fn unschedulable() -> Unschedulable {
        Unschedulable {
            object: web(),
            slot: 3,
            node: None,
            template_hash: "5f2c9a1b7d".into(),
            reason: "0/1 nodes are available: 1 Insufficient memory.".into(),
        }
    }

    fn held() -> Held {
        Held {
            object: web(),
            replicas: 2,
            nodes: vec!["n2".into()],
        }
    }

    fn node(name: &str, condition: NodeCondition) -> NodeStatus {
        NodeStatus {
            name: name.into(),
            condition,
            replicas: 0,
        }
    }

    fn unreachable() -> NodeCondition {
        NodeCondition::Unreachable {
            seconds: 0,
            grace_seconds: 40,
            past_grace: false,
            reason: "connection refused".into(),
            contents_unknown: true,
        }
    }

    /// Issue 12, items 2 and 6: unschedulable replicas (4) outrank changes
    /// (2), which outrank an unknown state (3); held replicas counted as
    /// changes before, and unschedulable ones exited 2.
    #[test]
    fn detailed_exit_codes_rank_unschedulable_changes_unknown() {
        let check = |plan: Plan, expected: u8| {
            assert_eq!(detailed_exit_code(&plan), expected, "{plan:?}");
        };
        check(Plan::default(), exit::OK);
        check(
            Plan {
                actions: vec![remove()],
                ..Plan::default()
            },
            exit::CHANGES,
        );
        check(
            Plan {
                held: vec![held()],
                ..Plan::default()
            },
            exit::UNKNOWN,
        );
        check(
            Plan {
                nodes: vec![node("n2", NodeCondition::NotObserved)],
                ..Plan::default()
            },
            exit::UNKNOWN,
        );
        check(
            Plan {
                nodes: vec![node("n2", unreachable())],
                ..Plan::default()
            },
            exit::UNKNOWN,
        );
        // A node no longer declared was observed: nothing is unknown.
        check(
            Plan {
                nodes: vec![node("old", NodeCondition::NotDeclared)],
                ..Plan::default()
            },
            exit::OK,
        );
        check(
            Plan {
                actions: vec![remove()],
                held: vec![held()],
                nodes: vec![node("n2", unreachable())],
                ..Plan::default()
            },
            exit::CHANGES,
        );
        check(
            Plan {
                actions: vec![remove()],
                unschedulable: vec![unschedulable()],
                held: vec![held()],
                ..Plan::default()
            },
            exit::UNSCHEDULABLE,
        );
    }

    #[test]
    fn unobserved_nodes_are_the_unreachable_and_the_absent() {
        let plan = Plan {
            nodes: vec![
                node("a", unreachable()),
                node("b", NodeCondition::NotObserved),
                node("c", NodeCondition::NotDeclared),
            ],
            ..Plan::default()
        };
        assert_eq!(unobserved_nodes(&plan), ["a", "b"]);
    }
}
