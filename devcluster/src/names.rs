//! Object name validation with the real server's messages (apimachinery
//! `pkg/util/validation` and `pkg/api/validation/path`).

use crate::registry::NameRule;

const SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// What is wrong with `name` under `rule`, one message per problem (empty if valid).
pub fn name_errors(name: &str, rule: NameRule) -> Vec<String> {
    match rule {
        NameRule::Subdomain => {
            let mut errors = Vec::new();
            if name.len() > 253 {
                errors.push("must be no more than 253 characters".to_string());
            }
            if !name.split('.').all(is_label) {
                errors.push(SUBDOMAIN_ERR.to_string());
            }
            errors
        }
        NameRule::Label => {
            let mut errors = Vec::new();
            if name.len() > 63 {
                errors.push("must be no more than 63 characters".to_string());
            }
            if !is_label(name) {
                errors.push(LABEL_ERR.to_string());
            }
            errors
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                vec![format!("may not be '{name}'")]
            } else if let Some(c) = ['/', '%'].into_iter().find(|c| name.contains(*c)) {
                vec![format!("may not contain '{c}'")]
            } else {
                Vec::new()
            }
        }
    }
}

fn is_label(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && alnum(&bytes[0])
        && alnum(&bytes[bytes.len() - 1])
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        assert!(name_errors("web-1.example", NameRule::Subdomain).is_empty());
        assert_eq!(name_errors("Web", NameRule::Subdomain), vec![SUBDOMAIN_ERR]);
        assert_eq!(
            name_errors("a..b", NameRule::Subdomain),
            vec![SUBDOMAIN_ERR]
        );
        assert_eq!(name_errors("-a", NameRule::Subdomain), vec![SUBDOMAIN_ERR]);
        assert_eq!(name_errors(&"a".repeat(254), NameRule::Subdomain).len(), 1);
    }

    #[test]
    fn labels_and_segments() {
        assert!(name_errors("team-a", NameRule::Label).is_empty());
        assert_eq!(name_errors("team.a", NameRule::Label), vec![LABEL_ERR]);
        assert!(name_errors("system:controller:x", NameRule::PathSegment).is_empty());
        assert_eq!(
            name_errors("a/b", NameRule::PathSegment),
            vec!["may not contain '/'"]
        );
        assert_eq!(
            name_errors("..", NameRule::PathSegment),
            vec!["may not be '..'"]
        );
    }
}
