//! Naming one object on the command line the way kubectl does:
//! `deployment/web`, `Deployment/web`, `deploy/web`, `deployment/staging/web`
//! or `-n staging deployment/web`, `node/n1`.

use crate::manifest::model::{Kind, ObjectKey};
use crate::manifest::names;

/// Reads `KIND/NAME` or `KIND/NAMESPACE/NAME`; `namespace` is `-n`.
/// Namespaced kinds default to the `default` namespace.
pub(super) fn parse_object_ref(text: &str, namespace: Option<&str>) -> Result<ObjectKey, String> {
    let parts: Vec<&str> = text.split('/').collect();
    let (kind_text, in_ref, name) = match parts.as_slice() {
        [kind, name] => (*kind, None, *name),
        [kind, namespace, name] => (*kind, Some(*namespace), *name),
        _ => {
            return Err(format!(
                "`{text}`: expected KIND/NAME or KIND/NAMESPACE/NAME, e.g. deployment/web"
            ))
        }
    };
    if name.is_empty() || in_ref.is_some_and(str::is_empty) {
        return Err(format!("`{text}`: empty name or namespace"));
    }
    let kind = parse_kind(kind_text)?;
    let namespace = match (in_ref, namespace) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "`{text}` names namespace {a}, but -n says {b}; give it once"
            ))
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let namespace = match (kind.is_namespaced(), namespace) {
        (true, namespace) => namespace.unwrap_or("default").to_string(),
        (false, None) => String::new(),
        (false, Some(_)) => {
            return Err(format!(
                "{} is cluster-scoped and has no namespace",
                kind.as_str().to_ascii_lowercase()
            ))
        }
    };
    Ok(ObjectKey {
        kind,
        namespace,
        name: name.to_string(),
    })
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    let lower = text.to_ascii_lowercase();
    let Some(kind) = Kind::ALL
        .into_iter()
        .find(|kind| kind.cli_names().contains(&lower.as_str()))
    else {
        let known: Vec<&str> = Kind::supported()
            .flat_map(|kind| kind.cli_names().iter().copied())
            .collect();
        return Err(match names::did_you_mean(&lower, &known) {
            Some(close) => format!("unknown kind `{text}`, did you mean `{close}`?"),
            None => format!("unknown kind `{text}` (flotilla deploys {})", deployed()),
        });
    };
    if !kind.is_supported() {
        return Err(format!(
            "flotilla does not deploy {kind} objects yet (it deploys {})",
            deployed()
        ));
    }
    Ok(kind)
}

/// `cluster, node, deployment, service and daemonset`.
fn deployed() -> String {
    let names: Vec<&str> = Kind::supported().map(|k| k.cli_names()[0]).collect();
    names::listed(&names, "and")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, namespace: Option<&str>, expected: Result<&str, &str>) {
        let actual = parse_object_ref(text, namespace).map(|key| key.to_string());
        assert_eq!(
            actual.as_deref().map_err(String::as_str),
            expected,
            "{text} -n {namespace:?}"
        );
    }

    #[test]
    fn kubectl_forms() {
        let cases: [(&str, Option<&str>, Result<&str, &str>); 21] = [
            ("deployment/web", None, Ok("Deployment default/web")),
            ("Deployment/web", None, Ok("Deployment default/web")),
            ("deploy/web", None, Ok("Deployment default/web")),
            ("deployments/web", None, Ok("Deployment default/web")),
            ("deployment/staging/web", None, Ok("Deployment staging/web")),
            ("deployment/web", Some("staging"), Ok("Deployment staging/web")),
            ("deployment/staging/web", Some("staging"), Ok("Deployment staging/web")),
            ("node/n1", None, Ok("Node n1")),
            ("NO/n1", None, Ok("Node n1")),
            ("cluster/main", None, Ok("Cluster main")),
            (
                "deployment/a/web",
                Some("b"),
                Err("`deployment/a/web` names namespace a, but -n says b; give it once"),
            ),
            (
                "node/x/n1",
                None,
                Err("node is cluster-scoped and has no namespace"),
            ),
            (
                "web",
                None,
                Err("`web`: expected KIND/NAME or KIND/NAMESPACE/NAME, e.g. deployment/web"),
            ),
            ("deployment/", None, Err("`deployment/`: empty name or namespace")),
            ("svc/web", None, Ok("Service default/web")),
            ("cm/web", None, Ok("ConfigMap default/web")),
            ("secret/db", Some("shop"), Ok("Secret shop/db")),
            ("job/pi", None, Ok("Job default/pi")),
            (
                "cronjob/nightly",
                None,
                Err("flotilla does not deploy CronJob objects yet (it deploys cluster, node, deployment, service, daemonset, statefulset, job, configmap, secret, ingress and persistentvolumeclaim)"),
            ),
            (
                "deploymnt/web",
                None,
                Err("unknown kind `deploymnt`, did you mean `deployment`?"),
            ),
            (
                "widget/web",
                None,
                Err("unknown kind `widget` (flotilla deploys cluster, node, deployment, service, daemonset, statefulset, job, configmap, secret, ingress and persistentvolumeclaim)"),
            ),
        ];
        for (text, namespace, expected) in cases {
            check(text, namespace, expected);
        }
    }
}
