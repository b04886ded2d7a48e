//! Matching Pods against a Deployment's `spec.selector` (a structured `LabelSelector`, not a
//! selector string: nothing to parse, only the four operators to evaluate).

use std::collections::BTreeMap;

use trellis_guest::Error;
use trellis_guest::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether labels satisfy the selector: every `matchLabels` pair and every
/// `matchExpressions` requirement, as the API server evaluates them. An unknown operator is an
/// error naming it (the server would have rejected the Deployment; better to say so than to
/// guess).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, Error> {
    let pairs = selector.match_labels.iter().flatten();
    if !pairs.into_iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return Ok(false);
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let value = labels.get(&requirement.key);
        let values = requirement.values.as_deref().unwrap_or_default();
        let ok = match requirement.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(Error::permanent(format!(
                    "spec.selector.matchExpressions: unknown operator {other:?} for key {:?}",
                    requirement.key
                )));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The `label` index value to find candidates by: the first `matchLabels` pair (any pair
/// narrows the candidates to a superset of the matches). `None` when the selector has no
/// pairs, and candidates must come from the whole namespace.
pub fn index_value(selector: &LabelSelector) -> Option<String> {
    let (key, value) = selector.match_labels.as_ref()?.iter().next()?;
    Some(trellis_guest::index::label(key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_guest::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn match_labels_and_every_operator() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expression("tier", "In", &["front", "edge"]),
                expression("track", "NotIn", &["canary"]),
                expression("team", "Exists", &[]),
                expression("legacy", "DoesNotExist", &[]),
            ]),
        };
        let yes = labels(&[("app", "web"), ("tier", "edge"), ("team", "x")]);
        assert!(matches(&selector, &yes).unwrap());
        for (key, value) in [
            ("app", "db"),
            ("tier", "back"),
            ("track", "canary"),
            ("legacy", "1"),
        ] {
            let mut no = yes.clone();
            no.insert(key.to_owned(), value.to_owned());
            assert!(!matches(&selector, &no).unwrap(), "{key}={value}");
        }
        let mut no_team = yes.clone();
        no_team.remove("team");
        assert!(!matches(&selector, &no_team).unwrap());
        assert_eq!(index_value(&selector).as_deref(), Some("app=web"));
    }

    #[test]
    fn an_empty_selector_matches_everything_and_has_no_index_value() {
        let selector = LabelSelector::default();
        assert!(matches(&selector, &labels(&[("any", "thing")])).unwrap());
        assert_eq!(index_value(&selector), None);
    }

    #[test]
    fn an_unknown_operator_is_a_permanent_error() {
        let selector = LabelSelector {
            match_expressions: Some(vec![expression("a", "Like", &["x"])]),
            ..LabelSelector::default()
        };
        let err = matches(&selector, &labels(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.selector.matchExpressions: unknown operator \"Like\" for key \"a\""
        );
        assert!(!err.is_retryable());
    }
}
