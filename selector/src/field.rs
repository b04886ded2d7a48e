//! Field selectors: `metadata.name=web,status.phase!=Running`.
//!
//! A port of apimachinery's `fields.ParseSelector`. Only `=`, `==` and `!=` exist; values escape
//! `\`, `,` and `=` with a backslash. Which fields a kind supports is the server's business, not
//! the syntax's: the devcluster checks field names per kind (and answers "field label not
//! supported"), so this module only parses and matches.

use std::collections::BTreeMap;
use std::fmt;

/// Something with selectable fields. A field it does not have reads as the empty string, as in
/// the server's `fields.Set`.
pub trait Fields {
    fn field(&self, name: &str) -> Option<&str>;
}

impl Fields for BTreeMap<String, String> {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Fields for [(&str, &str)] {
    fn field(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

impl<F: Fields + ?Sized> Fields for &F {
    fn field(&self, name: &str) -> Option<&str> {
        (**self).field(name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    /// Unescaped.
    pub value: String,
}

impl FieldRequirement {
    pub fn matches(&self, fields: &impl Fields) -> bool {
        let actual = fields.field(&self.field).unwrap_or("");
        (actual == self.value) == (self.operator == FieldOperator::Equals)
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector: the conjunction of its requirements, sorted as the server sorts
/// the terms. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Why a field selector was rejected. `Display` is the API server's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelectorError {
    message: String,
}

impl fmt::Display for FieldSelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldSelectorError {}

impl FieldSelector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    pub fn matches(&self, fields: &impl Fields) -> bool {
        self.requirements.iter().all(|r| r.matches(fields))
    }

    /// The value this selector pins `field` to with `=`, if any (what the server uses to serve
    /// `metadata.name=x` as a get instead of a scan).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut terms = split_terms(selector);
        terms.sort();
        let mut requirements = Vec::new();
        for term in terms.iter().filter(|t| !t.is_empty()) {
            let not_understood = || FieldSelectorError {
                message: format!("invalid selector: '{selector}'; can't understand '{term}'"),
            };
            let (field, operator, raw_value) = split_term(term).ok_or_else(not_understood)?;
            let value = unescape_value(raw_value)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(Self { requirements })
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// Splits on commas that are not escaped; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Finds the first unescaped operator, trying `!=`, then `==`, then `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::Equals),
        ("=", FieldOperator::Equals),
    ];
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        for (symbol, operator) in OPERATORS {
            if term[i..].starts_with(symbol) {
                return Some((&term[..i], operator, &term[i + symbol.len()..]));
            }
        }
    }
    None
}

fn unescape_value(value: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError {
                    message: format!("invalid field selector: invalid escape sequence: \\{c}"),
                });
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => {
                return Err(FieldSelectorError {
                    message: format!("invalid field selector: unescaped character {c}"),
                });
            }
            c => out.push(c),
        }
    }
    if escaped {
        return Err(FieldSelectorError {
            message: "invalid field selector: invalid escape sequence: \\".to_string(),
        });
    }
    Ok(out)
}

fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod<'a>() -> Vec<(&'a str, &'a str)> {
        vec![
            ("metadata.name", "web-1"),
            ("metadata.namespace", "prod"),
            ("status.phase", "Running"),
        ]
    }

    fn matches(selector: &str) -> bool {
        FieldSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{selector:?} should parse: {e}"))
            .matches(&pod().as_slice())
    }

    #[test]
    fn operators() {
        assert!(matches(""));
        assert!(matches("metadata.name=web-1"));
        assert!(matches("metadata.name==web-1"));
        assert!(!matches("metadata.name=web-2"));
        assert!(matches("status.phase!=Pending"));
        assert!(matches("metadata.name=web-1,status.phase=Running"));
        assert!(!matches("metadata.name=web-1,status.phase=Pending"));
        assert!(matches("spec.nodeName="), "an absent field reads as empty");
        assert!(matches("metadata.name=web-1,"), "empty terms are skipped");
    }

    #[test]
    fn escapes() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(s.exact("metadata.name"), Some(r"a,b=c\d"));
    }

    #[test]
    fn sorted_like_the_server() {
        let s = FieldSelector::parse("status.phase=Running,metadata.name=x").unwrap();
        assert_eq!(s.to_string(), "metadata.name=x,status.phase=Running");
    }

    fn parse_error(selector: &str) -> String {
        FieldSelector::parse(selector)
            .expect_err("should be rejected")
            .to_string()
    }

    #[test]
    fn errors_are_the_servers() {
        assert_eq!(
            parse_error("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            parse_error(r"metadata.name=a\x"),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            parse_error("metadata.name=a=b"),
            "invalid field selector: unescaped character ="
        );
        assert_eq!(
            parse_error(r"metadata.name=a\"),
            r"invalid field selector: invalid escape sequence: \"
        );
    }
}
