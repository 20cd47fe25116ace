//! A plan for people: per object, Terraform-style lines (`+` create,
//! `~` update, `-` remove, `!` unschedulable, `?` unknown), the nodes that
//! cannot be reached or whose capacity is unknown, the manifest diff, and a
//! summary line.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use super::{Change, ClaimState, NodeCondition, ObjectStatus, Plan, RolloutStrategy};
use crate::manifest::model::ObjectKey;
use crate::manifest::ConsumedChange;

/// How to render. The caller decides colour (from `NO_COLOR` and whether
/// the output is a terminal); the planner never looks.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions<'a> {
    pub colour: bool,
    /// The output of [`super::manifest_diff`], shown when not empty.
    pub manifest_diff: Option<&'a str>,
    /// Per workload that rolls because a value it reads changed (against
    /// the revision it runs): the keys, shown under its line.
    pub config_changes: Option<&'a BTreeMap<ObjectKey, Vec<ConsumedChange>>>,
}

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(self, RenderOptions::default()))
    }
}

/// The text `flotilla plan` prints.
pub fn render(plan: &Plan, options: RenderOptions<'_>) -> String {
    let paint = |colour: &str, text: &str| {
        if options.colour {
            format!("{colour}{text}{RESET}")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    // Grouped once: a plan of many objects and many actions renders in
    // linear time.
    let mut actions_of = by_object(&plan.actions, |a| &a.object);
    let mut unschedulable_of = by_object(&plan.unschedulable, |u| &u.object);
    let mut held_of = by_object(&plan.held, |h| &h.object);
    let mut waiting_of = by_object(&plan.waiting, |w| &w.object);
    for object in &plan.objects {
        let actions = actions_of.remove(&object.key).unwrap_or_default();
        let unschedulable = unschedulable_of.remove(&object.key).unwrap_or_default();
        let held = held_of.remove(&object.key).unwrap_or_default();
        let waiting = waiting_of.remove(&object.key).unwrap_or_default();
        if actions.is_empty()
            && unschedulable.is_empty()
            && held.is_empty()
            && waiting.is_empty()
            && object.unknown == 0
            && object.lost == 0
            && object
                .run
                .as_ref()
                .is_none_or(|r| matches!(r.state, super::RunState::Recorded { .. }))
        {
            continue;
        }
        let _ = writeln!(out, "{}", paint(BOLD, &object_header(object)));
        if let Some(run) = &object.run {
            let colour = match run.state {
                super::RunState::Unknown { .. } | super::RunState::BackingOff { .. } => YELLOW,
                _ => BOLD,
            };
            let _ = writeln!(
                out,
                "{}",
                paint(
                    colour,
                    &format!("  run of revision {}: {run}", run.revision)
                )
            );
        }
        if let Some(changes) = options.config_changes.and_then(|c| c.get(&object.key)) {
            let listed: Vec<String> = changes.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "  rolls because {}", listed.join(", "));
        }
        if let Some(rollout) = &object.rollout {
            let line = match rollout.strategy {
                RolloutStrategy::RollingUpdate => format!(
                    "  ~ rolling update {}/{} (maxSurge {}, maxUnavailable {}) to revision {}",
                    rollout.updated,
                    rollout.desired,
                    rollout.max_surge,
                    rollout.max_unavailable,
                    rollout.new_template_hash
                ),
                RolloutStrategy::Recreate => format!(
                    "  ~ recreate {}/{}: old revision removed first, then revision {}",
                    rollout.updated, rollout.desired, rollout.new_template_hash
                ),
            };
            let _ = writeln!(out, "{}", paint(YELLOW, &line));
        }
        let shown = actions.len().min(MAX_LINES_PER_OBJECT);
        for action in &actions[..shown] {
            let (symbol, colour) = match action.change() {
                Change::Create => ("+", GREEN),
                Change::Update => ("~", YELLOW),
                Change::Remove => ("-", RED),
            };
            let line = format!(
                "  {symbol} {}[{}] {} on {} ({}): {}{}",
                action.object.name,
                action.slot,
                action.verb(),
                action.node,
                action.template_hash,
                action.reason,
                pod_structure(action)
            );
            let _ = writeln!(out, "{}", paint(colour, &line));
        }
        if actions.len() > shown {
            let line = format!(
                "  ... and {} more action(s) on {} (`--output json` lists every one)",
                actions.len() - shown,
                object.key.name
            );
            let _ = writeln!(out, "{line}");
        }
        let shown = unschedulable.len().min(MAX_LINES_PER_OBJECT);
        for u in &unschedulable[..shown] {
            let on = u
                .node
                .as_ref()
                .map(|node| format!(" on {node}"))
                .unwrap_or_default();
            let line = format!(
                "  ! {}[{}] unschedulable{on}: {}",
                u.object.name, u.slot, u.reason
            );
            let _ = writeln!(out, "{}", paint(RED, &line));
        }
        if unschedulable.len() > shown {
            let line = format!(
                "  ! ... and {} more unschedulable replica(s) of {}",
                unschedulable.len() - shown,
                object.key.name
            );
            let _ = writeln!(out, "{}", paint(RED, &line));
        }
        for w in waiting {
            let line = format!("  ? {}[{}] waits: {}", w.object.name, w.slot, w.reason);
            let _ = writeln!(out, "{}", paint(YELLOW, &line));
        }
        for h in held {
            let (nodes, until) = match h.nodes.as_slice() {
                [one] => (
                    format!("node {one}"),
                    "it answers or its grace period has passed",
                ),
                many => (
                    format!("nodes {}", many.join(", ")),
                    "they answer or their grace periods have passed",
                ),
            };
            let line = format!(
                "  ? {} replica(s) of {} unknown: {nodes} unreachable and never seen, none created elsewhere until {until}",
                h.replicas, h.object.name
            );
            let _ = writeln!(out, "{}", paint(YELLOW, &line));
        }
    }
    for service in &plan.services {
        let line = format!(
            "= service {}/{} {} {}: {} pod(s) selected",
            service.key.namespace,
            service.key.name,
            service.cluster_ip,
            service.ports.join(", "),
            service.selected
        );
        let _ = writeln!(out, "{line}");
        for pod in &service.leaving {
            let line = format!("  - {pod} leaves every node proxy, drained before it stops");
            let _ = writeln!(out, "{}", paint(RED, &line));
        }
        if service.joining > 0 {
            let line = format!("  + {} new pod(s) join once ready", service.joining);
            let _ = writeln!(out, "{}", paint(GREEN, &line));
        }
    }
    let mut claim_lines = 0;
    let shown_claims = plan.claims.iter().filter(|c| c.state != ClaimState::Bound);
    let claims_to_show = shown_claims.clone().count();
    for claim in shown_claims {
        claim_lines += 1;
        if claim_lines > MAX_LINES_PER_OBJECT {
            let line = format!(
                "... and {} more claim(s) (`--output json` lists every one)",
                claims_to_show - MAX_LINES_PER_OBJECT
            );
            let _ = writeln!(out, "{line}");
            break;
        }
        let id = format!("{}/{}", claim.namespace, claim.name);
        let size = crate::manifest::quantity::Bytes(claim.storage);
        let nodes = claim.nodes.join(", ");
        let (line, colour) = match claim.state {
            ClaimState::Bound => continue,
            ClaimState::Binding => (
                format!("+ claim {id} ({size}): bound to {nodes} with its first pod"),
                GREEN,
            ),
            ClaimState::Pending => (
                format!("= claim {id} ({size}): not bound yet; bound to the node of its first pod"),
                "",
            ),
            ClaimState::Unknown => (
                format!("? claim {id} ({size}): not seen, and node(s) {nodes} never seen: it may be bound there"),
                YELLOW,
            ),
            ClaimState::Kept => (
                format!("= claim {id} ({size}) on {nodes}: no longer declared, its volume and data are kept (to delete them: `flotilla volume delete {id}`)"),
                "",
            ),
            ClaimState::Deleting => (
                format!(
                    "- claim {id} ({size}) on {nodes}: DELETES DATA: its volume is removed ({})",
                    claim.reason.as_deref().unwrap_or("Git says so")
                ),
                RED,
            ),
            ClaimState::DeleteWaits => (
                format!(
                    "? claim {id} ({size}) on {nodes}: its volume and data are to be deleted ({}), once its node is reachable and no pod of it runs there",
                    claim.reason.as_deref().unwrap_or("Git says so")
                ),
                YELLOW,
            ),
            ClaimState::Conflict => (
                format!("! claim {id} ({size}) has a volume on each of {nodes}: no pod using it is placed until all but one are removed by hand"),
                RED,
            ),
        };
        let _ = writeln!(
            out,
            "{}",
            if colour.is_empty() {
                line
            } else {
                paint(colour, &line)
            }
        );
    }
    for removal in plan.volume_removals.iter().filter(|r| r.claim.is_none()) {
        let line = format!(
            "- volume {} on {}: {}",
            removal.volume, removal.node, removal.reason
        );
        let _ = writeln!(out, "{}", paint(RED, &line));
    }
    for node in &plan.nodes {
        let line = match &node.condition {
            NodeCondition::Unreachable {
                seconds,
                grace_seconds,
                past_grace,
                reason,
                contents_unknown,
            } => {
                let verdict = if *past_grace {
                    "past the grace period: its replicas are placed elsewhere"
                } else {
                    "within the grace period: its replicas count as unknown"
                };
                let contents = if *contents_unknown {
                    "its containers were never seen".to_string()
                } else {
                    format!("{} replica(s) last seen there", node.replicas)
                };
                format!(
                    "! node {} unreachable for {seconds}s ({reason}), grace {grace_seconds}s, {verdict}; {contents}",
                    node.name
                )
            }
            NodeCondition::NotObserved => format!("! node {} was not observed", node.name),
            NodeCondition::NotDeclared => format!(
                "! node {} is no longer declared: left alone, its {} replica(s) are placed elsewhere",
                node.name, node.replicas
            ),
        };
        let _ = writeln!(out, "{}", paint(RED, &line));
    }
    if !plan.unknown_capacity.is_empty() {
        let line = match plan.unknown_capacity.as_slice() {
            [one] => format!("node {one} declares no capacity"),
            many => format!("nodes {} declare no capacity", many.join(", ")),
        };
        let line = format!(
            "? {line} and no observation gave one: CPU and memory fit not checked; declare spec.capacity to check it"
        );
        let _ = writeln!(out, "{}", paint(YELLOW, &line));
    }
    if let Some(diff) = options.manifest_diff.filter(|d| !d.is_empty()) {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", paint(BOLD, "Manifest changes:"));
        for line in diff.lines() {
            let coloured = match line.as_bytes().first() {
                Some(b'+') if !line.starts_with("+++") => paint(GREEN, line),
                Some(b'-') if !line.starts_with("---") => paint(RED, line),
                _ => line.to_string(),
            };
            let _ = writeln!(out, "{coloured}");
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// Lines of actions (and of unschedulable replicas) shown per object; the
/// rest are counted on one line. The summary and `--output json` count and
/// list them all; this keeps the text (and the pre-receive hook's answer to
/// a pusher) in proportion to the objects, not the replicas.
pub const MAX_LINES_PER_OBJECT: usize = 50;

fn by_object<T>(items: &[T], object: impl Fn(&T) -> &ObjectKey) -> HashMap<&ObjectKey, Vec<&T>> {
    let mut grouped: HashMap<&ObjectKey, Vec<&T>> = HashMap::new();
    for item in items {
        grouped.entry(object(item)).or_default().push(item);
    }
    grouped
}

fn object_header(object: &ObjectStatus) -> String {
    let mut line = match object.desired {
        Some(desired) => format!(
            "{}: {desired} desired, {} on reachable nodes, {} unknown",
            object.key, object.on_reachable_nodes, object.unknown
        ),
        None => format!(
            "{}: no longer declared, {} on reachable nodes, {} unknown",
            object.key, object.on_reachable_nodes, object.unknown
        ),
    };
    if object.lost > 0 {
        let _ = write!(line, ", {} lost", object.lost);
    }
    line
}

/// `Plan: 3 to create, 1 to update, 2 to remove, 1 unschedulable.`, and
/// `, 2 unknown` before the full stop when replicas are held as unknown.
pub fn summary(plan: &Plan) -> String {
    if plan.is_empty() {
        let unseen = plan
            .nodes
            .iter()
            .filter(|n| {
                matches!(
                    n.condition,
                    NodeCondition::Unreachable {
                        contents_unknown: true,
                        ..
                    } | NodeCondition::NotObserved
                )
            })
            .count();
        if unseen > 0 {
            // Nothing to do on the nodes seen, but what runs on the others
            // is unknown: "the cluster matches" would be a guess.
            return format!(
                "No changes on the nodes observed; {unseen} node(s) never observed, what runs there is unknown."
            );
        }
        let unknown_runs = plan
            .objects
            .iter()
            .filter(|o| {
                o.run
                    .as_ref()
                    .is_some_and(|r| matches!(r.state, super::RunState::Unknown { .. }))
            })
            .count();
        if unknown_runs > 0 {
            // Whether a Job runs depends on records this plan could not read.
            return format!(
                "No changes planned; whether {unknown_runs} run(s) to completion will run is unknown (see above)."
            );
        }
        if !plan.services.is_empty() {
            // The proxies' tables are the leader's to compare and write; a
            // plan does not read them, so it claims nothing about them.
            return "No changes to pods; the node proxies' tables are not compared (the leader rewrites any that differs).".into();
        }
        return "No changes. The cluster matches the desired state.".into();
    }
    let (create, update, remove, unschedulable) = plan.counts();
    let unknown = match plan.unknown_replicas() {
        0 => String::new(),
        n => format!(", {n} unknown"),
    };
    let data = plan
        .volume_removals
        .iter()
        .filter(|r| r.claim.is_some())
        .count();
    let scratch = plan.volume_removals.len() - data;
    let mut volumes = String::new();
    if !plan.waiting.is_empty() {
        volumes.push_str(&format!(", {} waiting", plan.waiting.len()));
    }
    if data > 0 {
        volumes.push_str(&format!(
            ", {data} claim volume(s) to delete WITH THEIR DATA"
        ));
    }
    if scratch > 0 {
        volumes.push_str(&format!(", {scratch} emptyDir volume(s) to remove"));
    }
    format!(
        "Plan: {create} to create, {update} to update, {remove} to remove, {unschedulable} unschedulable{unknown}{volumes}."
    )
}

/// For a pod created in a sandbox, the order its containers run in:
/// ` [sandbox; init setup; sidecar log; app web]`; nothing for a pod of one
/// container.
fn pod_structure(action: &super::Action) -> String {
    use crate::cluster::ContainerRole;
    let super::Operation::Create { containers, .. } = &action.operation else {
        return String::new();
    };
    if !containers.iter().any(|c| c.role == ContainerRole::Sandbox) {
        return String::new();
    }
    let parts: Vec<String> = containers
        .iter()
        .map(|c| match c.role {
            ContainerRole::Sandbox => "sandbox".to_string(),
            ContainerRole::Init => format!("init {}", c.container),
            ContainerRole::Sidecar => format!("sidecar {}", c.container),
            ContainerRole::App => format!("app {}", c.container),
        })
        .collect();
    format!(" [{}]", parts.join("; "))
}
