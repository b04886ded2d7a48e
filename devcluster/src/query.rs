//! Query parameters of list and watch requests, validated as the real server validates them.
//!
//! The checks and messages follow apimachinery's `ValidateListOptions` (422 Invalid on
//! `ListOptions.meta.k8s.io`), selector parsing errors are 400 BadRequest with the parser's
//! message, and continue tokens have the real server's shape (base64 JSON with the snapshot
//! version and the last key), so a client cannot tell them apart.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use trellis_selector::{FieldSelector, LabelSelector};

use crate::fields::parse_selector;
use crate::object::ObjKey;
use crate::registry::ResourceType;
use crate::status::{ApiError, Cause};

/// Decoded query pairs, in order; `?&watch=true` (kube's leading `&`) is fine.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`, `1`); an unparsable value is a 400 naming it.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("true" | "1" | "True" | "TRUE") => Ok(Some(true)),
            Some("false" | "0" | "False" | "FALSE" | "") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid boolean value {other:?} for parameter {key}"
            ))),
        }
    }
}

/// The options of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: bool,
    pub allow_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout_seconds: Option<u64>,
}

impl ListOptions {
    pub fn parse(resource: &ResourceType, query: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = parse_selector(resource, query.get("fieldSelector").unwrap_or(""))?;
        let number = |key: &str| -> Result<Option<u64>, ApiError> {
            match query.get(key) {
                None | Some("") => Ok(None),
                Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                    ApiError::bad_request(format!("invalid value {v:?} for parameter {key}"))
                }),
            }
        };
        let text = |key: &str| query.get(key).filter(|v| !v.is_empty()).map(str::to_string);
        let options = Self {
            labels,
            fields,
            limit: number("limit")?.filter(|l| *l > 0).map(|l| l as usize),
            continue_token: text("continue"),
            resource_version: text("resourceVersion"),
            resource_version_match: text("resourceVersionMatch"),
            watch: query.flag("watch")?.unwrap_or(false),
            allow_bookmarks: query.flag("allowWatchBookmarks")?.unwrap_or(false),
            send_initial_events: query.flag("sendInitialEvents")?,
            timeout_seconds: number("timeoutSeconds")?,
        };
        options.validate()?;
        Ok(options)
    }

    /// apimachinery's `ValidateListOptions`.
    fn validate(&self) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        let rv = self.resource_version.as_deref().unwrap_or("");
        let matching = self.resource_version_match.as_deref().unwrap_or("");
        if self.watch {
            if self.send_initial_events.is_some() && matching != "NotOlderThan" {
                causes.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !matching.is_empty() {
                if self.send_initial_events.is_none() {
                    causes.push(Cause::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if matching != "NotOlderThan" {
                    causes.push(Cause::not_supported(
                        "resourceVersionMatch",
                        matching,
                        &["NotOlderThan"],
                    ));
                }
                if self.continue_token.is_some() {
                    causes.push(Cause::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
        } else {
            if !matching.is_empty() {
                if rv.is_empty() {
                    causes.push(Cause::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if self.continue_token.is_some() {
                    causes.push(Cause::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
                if matching != "Exact" && matching != "NotOlderThan" {
                    causes.push(Cause::not_supported(
                        "resourceVersionMatch",
                        matching,
                        &["Exact", "NotOlderThan", ""],
                    ));
                }
                if matching == "Exact" && rv == "0" {
                    causes.push(Cause::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
            }
            if self.send_initial_events.is_some() {
                causes.push(Cause::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for list",
                ));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid_kind(
                "ListOptions",
                "meta.k8s.io",
                "",
                causes,
            ));
        }
        if self.continue_token.is_some() && !rv.is_empty() && rv != "0" {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        Ok(())
    }

    /// The resourceVersion as a number (`None` when unset or "0").
    pub fn resource_version(&self) -> Result<Option<u64>, ApiError> {
        match self.resource_version.as_deref() {
            None | Some("0") => Ok(None),
            Some(rv) => parse_rv(rv).map(Some),
        }
    }
}

pub fn parse_rv(rv: &str) -> Result<u64, ApiError> {
    rv.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

#[derive(Serialize, Deserialize)]
struct Token {
    v: String,
    rv: i64,
    start: String,
}

/// A continue token for the page after `last` in the snapshot at `rv` (0: an inconsistent
/// continuation at the latest version, as handed out with 410 Expired).
pub fn continue_token(rv: u64, last: &ObjKey) -> String {
    let start = if last.namespace.is_empty() {
        format!("{}\u{0}", last.name)
    } else {
        format!("{}/{}\u{0}", last.namespace, last.name)
    };
    let token = Token {
        v: "meta.k8s.io/v1".to_string(),
        rv: if rv == 0 { -1 } else { rv as i64 },
        start,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// Decodes a continue token into its snapshot version (`None`: latest) and the key after
/// which to continue.
pub fn decode_continue(token: &str, namespaced: bool) -> Result<(Option<u64>, ObjKey), ApiError> {
    let invalid = |why: String| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| invalid(e.to_string()))?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if token.v != "meta.k8s.io/v1" {
        return Err(invalid(format!("unsupported version {:?}", token.v)));
    }
    let start = token.start.trim_end_matches('\u{0}');
    let key = if namespaced {
        let (ns, name) = start
            .split_once('/')
            .ok_or_else(|| invalid("no namespace in start key".to_string()))?;
        ObjKey::new(ns, name)
    } else {
        ObjKey::new("", start)
    };
    let rv = match token.rv {
        rv if rv > 0 => Some(rv as u64),
        -1 => None,
        other => return Err(invalid(format!("invalid resource version {other}"))),
    };
    Ok((rv, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn pods() -> std::sync::Arc<ResourceType> {
        Registry::builtin().find("", "v1", "pods").unwrap()
    }

    fn parse(query: &str) -> Result<ListOptions, ApiError> {
        ListOptions::parse(&pods(), &Query::parse(Some(query)))
    }

    #[test]
    fn kube_style_queries_parse() {
        let o = parse("&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&labelSelector=app%3Dweb").unwrap();
        assert!(o.watch && o.allow_bookmarks);
        assert_eq!(o.send_initial_events, Some(true));
        assert_eq!(o.timeout_seconds, Some(290));
        assert_eq!(o.labels.to_string(), "app=web");
        let o = parse("limit=0").unwrap();
        assert_eq!(o.limit, None, "limit 0 means no limit");
    }

    #[test]
    fn invalid_combinations_get_the_servers_errors() {
        let error = parse("resourceVersionMatch=Exact").unwrap_err();
        assert_eq!(error.code, 422);
        assert_eq!(
            error.message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        );
        let error = parse("watch=1&sendInitialEvents=true").unwrap_err();
        assert!(
            error.message.contains(
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
            )
        );
        let error =
            parse("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=1")
                .unwrap_err();
        assert!(
            error
                .message
                .contains("sendInitialEvents is forbidden for list")
        );
        let error = parse("resourceVersion=0&resourceVersionMatch=Exact").unwrap_err();
        assert!(
            error
                .message
                .contains("resourceVersionMatch \\\"exact\\\" is forbidden")
                || error.message.contains("forbidden for resourceVersion")
        );
        let error = parse("labelSelector=a%20in%20(").unwrap_err();
        assert_eq!(error.code, 400);
        assert!(
            error.message.starts_with("unable to parse requirement")
                || error.message.contains("expected"),
            "{}",
            error.message
        );
        let error = parse("fieldSelector=spec.bogus%3D1").unwrap_err();
        assert_eq!(error.message, "field label not supported: spec.bogus");
        let error = parse("limit=abc").unwrap_err();
        assert_eq!(error.code, 400);
        let error = parse("continue=abc&resourceVersion=5").unwrap_err();
        assert_eq!(
            error.message,
            "specifying resource version is not allowed when using continue"
        );
        assert_eq!(parse("watch=maybe").unwrap_err().code, 400);
    }

    #[test]
    fn continue_tokens_round_trip() {
        let key = ObjKey::new("ns", "web-1");
        let token = continue_token(42, &key);
        assert_eq!(
            decode_continue(&token, true).unwrap(),
            (Some(42), key.clone())
        );
        let inconsistent = continue_token(0, &key);
        assert_eq!(decode_continue(&inconsistent, true).unwrap().0, None);
        let cluster = ObjKey::new("", "node-1");
        assert_eq!(
            decode_continue(&continue_token(7, &cluster), false)
                .unwrap()
                .1,
            cluster
        );
        let error = decode_continue("!!!", true).unwrap_err();
        assert_eq!(error.code, 400);
        assert!(error.message.starts_with("continue key is not valid"));
    }
}
