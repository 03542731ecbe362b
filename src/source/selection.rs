//! Which pods a source serves: `source.namespaces` and `source.label_selector`. The API server
//! applies both for the Kubernetes source; the file source applies them itself, so that a dump
//! of a cluster (`kubectl get pods -A -o json`) served with the cluster's configuration gives
//! the cluster's answers.

use std::collections::BTreeMap;

use super::PodView;

/// The pods a source serves: those of the listed namespaces (all when none is listed) whose
/// labels meet the selector (all when there is none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Empty: every namespace.
    pub namespaces: Vec<String>,
    pub labels: Option<LabelSelector>,
}

impl Selection {
    pub fn admits(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace))
            && self.labels.as_ref().is_none_or(|s| s.matches(labels))
    }
}

/// A pod outside a source's selection as the source delivers it: by its name only, claiming
/// nothing, so that a pod that leaves the selection leaves the zone, as it does when the API
/// server stops sending it.
pub fn unselected(pod: PodView) -> PodView {
    PodView {
        namespace: pod.namespace,
        name: pod.name,
        ..PodView::default()
    }
}

/// A label selector in the API server's grammar: requirements that a pod's labels all meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector {
    /// As written (trimmed): what the API server is sent and the configuration prints.
    text: String,
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    Absent(String),
    Equals(String, String),
    /// Also met by a pod without the label, as the API server has it.
    NotEquals(String, String),
    In(String, Vec<String>),
    /// Also met by a pod without the label.
    NotIn(String, Vec<String>),
}

impl LabelSelector {
    /// Reads `selector`, refused as the API server refuses it, so that a typo is a configuration
    /// error rather than a 400 at every retry.
    pub fn parse(selector: &str) -> Result<Self, String> {
        let selector = selector.trim();
        let mut depth = 0;
        let mut parts = Vec::new();
        let mut start = 0;
        for (i, c) in selector.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => return Err("unbalanced ')'".into()),
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&selector[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        if depth != 0 {
            return Err("unbalanced '('".into());
        }
        parts.push(&selector[start..]);
        let requirements = parts
            .into_iter()
            .map(|part| {
                let part = part.trim();
                if part.is_empty() {
                    return Err("empty requirement".to_owned());
                }
                requirement(part).map_err(|e| format!("{part:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: selector.to_owned(),
            requirements,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
        })
    }
}

fn requirement(req: &str) -> Result<Requirement, String> {
    if let Some(key) = req.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Requirement::Absent(key.to_owned()));
    }
    for op in ["!=", "==", "="] {
        if let Some((key, value)) = req.split_once(op) {
            let (key, value) = (key.trim(), value.trim());
            check_key(key)?;
            check_value(value)?;
            let (key, value) = (key.to_owned(), value.to_owned());
            return Ok(match op {
                "!=" => Requirement::NotEquals(key, value),
                _ => Requirement::Equals(key, value),
            });
        }
    }
    for op in [" notin ", " in "] {
        if let Some((key, values)) = req.split_once(op) {
            let key = key.trim();
            check_key(key)?;
            let inner = values
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or("values of in/notin go in parentheses")?;
            let values = inner
                .split(',')
                .map(|v| check_value(v.trim()).map(|()| v.trim().to_owned()))
                .collect::<Result<_, _>>()?;
            return Ok(match op {
                " notin " => Requirement::NotIn(key.to_owned(), values),
                _ => Requirement::In(key.to_owned(), values),
            });
        }
    }
    check_key(req)?;
    Ok(Requirement::Exists(req.to_owned()))
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !p.split('.').all(crate::identity::is_dns_label))
    {
        return Err(format!("key prefix {p:?} is not a DNS subdomain"));
    }
    if name.is_empty() {
        return Err("empty key".into());
    }
    check_value(name).map_err(|_| format!("key {name:?} is not a label name"))
}

fn check_value(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    let ok = value.is_empty()
        || (b.len() <= 63
            && edge(b[0])
            && edge(b[b.len() - 1])
            && b.iter()
                .all(|&c| edge(c) || matches!(c, b'-' | b'_' | b'.')));
    if ok {
        Ok(())
    } else {
        Err(format!("{value:?} is not a label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        for ok in [
            "app=db",
            "app==db,tier!=web",
            "roster.io/enabled",
            "!legacy",
            "env in (prod, staging)",
            "env notin (dev),app",
            "example.com/team=a-b_c.d",
            "x=",
        ] {
            assert!(LabelSelector::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a=b,",
            "=b",
            "a=b c",
            "env in prod",
            "env in (prod",
            "-a=b",
            "a/b/c=d",
            "a=-x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    /// Each operator as the API server applies it, a label that is absent included.
    #[test]
    fn selectors_match_as_the_api_server_does() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let db = labels(&[("app", "db"), ("tier", "data"), ("example.com/team", "a")]);
        let bare = labels(&[]);
        for (selector, on_db, on_bare) in [
            ("app=db", true, false),
            ("app==web", false, false),
            ("app!=web", true, true),
            ("app!=db", false, true),
            ("tier in (data, cache)", true, false),
            ("tier notin (data)", false, true),
            ("tier notin (web)", true, true),
            ("example.com/team", true, false),
            ("!example.com/team", false, true),
            ("app=db, tier in (cache)", false, false),
            ("app=db,!legacy", true, false),
            ("x=", false, false),
        ] {
            let s = LabelSelector::parse(selector).unwrap();
            assert_eq!(s.matches(&db), on_db, "{selector} on db");
            assert_eq!(
                s.matches(&bare),
                on_bare,
                "{selector} on a pod without labels"
            );
        }
        assert!(
            LabelSelector::parse("x=")
                .unwrap()
                .matches(&labels(&[("x", "")]))
        );
        assert_eq!(LabelSelector::parse(" app=db ").unwrap().as_str(), "app=db");
    }

    #[test]
    fn namespaces_and_labels_both_select() {
        let selection = Selection {
            namespaces: vec!["prod".into()],
            labels: Some(LabelSelector::parse("app=db").unwrap()),
        };
        let app = |v: &str| BTreeMap::from([("app".to_owned(), v.to_owned())]);
        assert!(selection.admits("prod", &app("db")));
        assert!(!selection.admits("staging", &app("db")));
        assert!(!selection.admits("prod", &app("web")));
        assert!(Selection::default().admits("any", &BTreeMap::new()));
        let pod = PodView {
            namespace: "prod".into(),
            name: "db-0".into(),
            label_service: Some("db".into()),
            ..PodView::default()
        };
        let bare = unselected(pod);
        assert_eq!(
            (bare.namespace.as_str(), bare.name.as_str()),
            ("prod", "db-0")
        );
        assert_eq!(bare.label_service, None, "claims nothing");
    }
}
