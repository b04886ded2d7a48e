//! Kubernetes name rules for the names a config gives (plugin names, lease names and
//! namespaces), with the API server's wording so that operators recognise them.

/// RFC 1123 label: plugin names (they become label values and parts of field managers) and
/// namespaces.
pub(crate) fn dns1123_label(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("{name:?} must be 1 to 63 characters"));
    }
    if !label_chars(name) {
        return Err(format!(
            "{name:?} is not a lowercase RFC 1123 label: it must consist of lower case \
             alphanumeric characters or '-', and start and end with an alphanumeric character \
             (e.g. 'my-name', or '123-abc')"
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain: most object names, such as a Lease's.
pub(crate) fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} must be 1 to 253 characters"));
    }
    if !name.split('.').all(label_chars) {
        return Err(format!(
            "{name:?} is not a lowercase RFC 1123 subdomain: it must consist of lower case \
             alphanumeric characters, '-' or '.', and start and end with an alphanumeric \
             character (e.g. 'example.com')"
        ));
    }
    Ok(())
}

fn label_chars(part: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    !part.is_empty() && part.chars().all(ok) && !part.starts_with('-') && !part.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        for good in ["a", "namespace-defaults", "0x1", &"a".repeat(63)] {
            assert_eq!(dns1123_label(good), Ok(()), "{good}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
        assert!(
            dns1123_label("Bad")
                .unwrap_err()
                .contains("lowercase RFC 1123 label")
        );
        for good in ["trellis", "trellis.example.com", "a-b.c"] {
            assert_eq!(dns1123_subdomain(good), Ok(()), "{good}");
        }
        for bad in ["", "a..b", ".a", "a.", "A.b", &"a".repeat(254)] {
            assert!(dns1123_subdomain(bad).is_err(), "{bad}");
        }
    }
}
