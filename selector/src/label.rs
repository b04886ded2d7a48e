//! Label selectors: `app=web,tier!=cache,env in (prod,staging),!legacy,replicas>2`.
//!
//! A port of apimachinery's `labels.Parse`: the same lexer (identifiers run until whitespace or
//! one of `=!(),<>`), the same grammar, the same validation and the same error texts, so a
//! selector the devcluster rejects is one a real API server rejects, with the message a user
//! would search for. Requirements are kept sorted by key, as the server does, which makes
//! `Display` canonical.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::validation::{go_quote, label_value_errors, qualified_name_errors};

/// Something with labels.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// The `metadata.labels` map of an object's JSON. A label whose value is not a string (which
/// the server never stores) counts as absent.
#[cfg(feature = "json")]
impl Labels for serde_json::Map<String, serde_json::Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(serde_json::Value::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOperator {
    /// `key` alone.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key=value`.
    Equals,
    /// `key==value`: the same as `Equals`, kept apart so `Display` round-trips.
    DoubleEquals,
    /// `key!=value`: also true when the label is absent.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`: also true when the label is absent.
    NotIn,
    /// `key>5` (integers only).
    GreaterThan,
    /// `key<5` (integers only).
    LessThan,
}

/// One comma-separated term of a selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: LabelOperator,
    /// Sorted and deduplicated, as Go's `sets.String.List()` leaves them.
    values: Vec<String>,
}

impl Requirement {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> LabelOperator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    pub fn matches(&self, labels: &impl Labels) -> bool {
        let value = labels.label(&self.key);
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            LabelOperator::In | LabelOperator::Equals | LabelOperator::DoubleEquals => {
                value.is_some_and(listed)
            }
            LabelOperator::NotIn | LabelOperator::NotEquals => !value.is_some_and(listed),
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let (Some(actual), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            LabelOperator::Exists => write!(f, "{key}"),
            LabelOperator::DoesNotExist => write!(f, "!{key}"),
            LabelOperator::Equals => write!(f, "{key}={first}"),
            LabelOperator::DoubleEquals => write!(f, "{key}=={first}"),
            LabelOperator::NotEquals => write!(f, "{key}!={first}"),
            LabelOperator::GreaterThan => write!(f, "{key}>{first}"),
            LabelOperator::LessThan => write!(f, "{key}<{first}"),
            LabelOperator::In => write!(f, "{key} in ({})", self.values.join(",")),
            LabelOperator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
        }
    }
}

/// A parsed label selector: the conjunction of its requirements. The empty selector matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Why a selector string was rejected. `Display` is the API server's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

fn error(message: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
    }
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Parses a selector as the API server does (`labels.Parse`).
    pub fn parse(selector: &str) -> Result<Self, ParseError> {
        let mut parser = Parser::new(selector);
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = parser.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = parser
                        .requirement()
                        .map_err(|e| error(format!("unable to parse requirement: {e}")))?;
                    requirements.push(requirement);
                    let (token, literal) = parser.consume(Context::Values);
                    match token {
                        Token::EndOfString => break,
                        Token::Comma => {
                            let (next, next_literal) = parser.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(error(format!(
                                    "found '{next_literal}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(error(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::EndOfString => break,
                _ => {
                    return Err(error(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
        // Requirements with equal keys are conjunctive, so their order among themselves does
        // not change the meaning; a stable sort keeps Display deterministic.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for LabelSelector {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Go's lexer, run to the end up front (the parser only looks one token ahead).
fn lex(input: &str) -> Vec<(Token, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut pos = 0;
    let mut items = Vec::new();
    loop {
        while pos < chars.len() && is_whitespace(chars[pos]) {
            pos += 1;
        }
        // Go's lexer treats a NUL byte as the end of the input.
        if pos >= chars.len() || chars[pos] == '\0' {
            items.push((Token::EndOfString, String::new()));
            return items;
        }
        if is_special(chars[pos]) {
            let mut buffer = String::new();
            let mut last: Option<(Token, String)> = None;
            while pos < chars.len() && is_special(chars[pos]) {
                buffer.push(chars[pos]);
                if let Some(token) = keyword(&buffer) {
                    last = Some((token, buffer.clone()));
                    pos += 1;
                } else if last.is_some() {
                    break;
                } else {
                    pos += 1;
                }
            }
            match last {
                Some(item) => items.push(item),
                None => items.push((
                    Token::Error,
                    format!("error expected: keyword found '{buffer}'"),
                )),
            }
        } else {
            let start = pos;
            while pos < chars.len() && !is_whitespace(chars[pos]) && !is_special(chars[pos]) {
                pos += 1;
            }
            let word: String = chars[start..pos].iter().collect();
            let token = keyword(&word).unwrap_or(Token::Identifier);
            items.push((token, word));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn new(input: &str) -> Self {
        Self {
            items: lex(input),
            position: 0,
        }
    }

    /// In the values context `in` and `notin` are plain identifiers (a label may be named so).
    fn contextualize(token: Token, context: Context) -> Token {
        match (token, context) {
            (Token::In | Token::NotIn, Context::Values) => Token::Identifier,
            _ => token,
        }
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        let (token, literal) = self.items[self.position.min(self.items.len() - 1)].clone();
        (Self::contextualize(token, context), literal)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.lookahead(context);
        if self.position < self.items.len() - 1 {
            self.position += 1;
        }
        item
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.key_and_inferred_operator()?;
        if let Some(operator) = inferred {
            return new_requirement(key, operator, Vec::new());
        }
        let operator = self.operator()?;
        let values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        new_requirement(key, operator, values)
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<LabelOperator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(LabelOperator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let errors = qualified_name_errors(&literal);
        if !errors.is_empty() {
            return Err(format!(
                "key: Invalid value: {}: {}",
                go_quote(&literal),
                errors.join("; ")
            ));
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(LabelOperator::Exists);
        }
        Ok((literal, operator))
    }

    fn operator(&mut self) -> Result<LabelOperator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => LabelOperator::In,
            Token::Equals => LabelOperator::Equals,
            Token::DoubleEquals => LabelOperator::DoubleEquals,
            Token::GreaterThan => LabelOperator::GreaterThan,
            Token::LessThan => LabelOperator::LessThan,
            Token::NotIn => LabelOperator::NotIn,
            Token::NotEquals => LabelOperator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    fn values(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.identifiers()?;
                let (token, _) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut values = Vec::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.push(literal);
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{next_literal}', expected: ',' or ')'")),
                    }
                }
                // `(,a)`, `(a,)` and `(a,,b)` each add the empty value, as in Go.
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if token == Token::EndOfString || token == Token::Comma {
            return Ok(vec![String::new()]);
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(vec![literal])
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

/// `labels.NewRequirement`: validates and normalizes one requirement.
fn new_requirement(
    key: String,
    operator: LabelOperator,
    mut values: Vec<String>,
) -> Result<Requirement, String> {
    values.sort();
    values.dedup();
    let mut errors = Vec::new();
    let key_errors = qualified_name_errors(&key);
    if !key_errors.is_empty() {
        errors.push(format!(
            "key: Invalid value: {}: {}",
            go_quote(&key),
            key_errors.join("; ")
        ));
    }
    let go_list = |values: &[String]| {
        format!(
            "[]string{{{}}}",
            values
                .iter()
                .map(|v| go_quote(v))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match operator {
        LabelOperator::In | LabelOperator::NotIn if values.is_empty() => errors.push(format!(
            "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
            go_list(&values)
        )),
        LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::NotEquals
            if values.len() != 1 =>
        {
            errors.push(format!(
                "values: Invalid value: {}: exact-match compatibility requires one single value",
                go_list(&values)
            ))
        }
        LabelOperator::GreaterThan | LabelOperator::LessThan => {
            if values.len() != 1 {
                errors.push(format!(
                    "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                    go_list(&values)
                ));
            }
            for (i, value) in values.iter().enumerate() {
                if value.parse::<i64>().is_err() {
                    errors.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_quote(value)
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, value) in values.iter().enumerate() {
        let value_errors = label_value_errors(value);
        if !value_errors.is_empty() {
            errors.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                go_quote(value),
                value_errors.join("; ")
            ));
        }
    }
    match errors.len() {
        0 => Ok(Requirement {
            key,
            operator,
            values,
        }),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matches(selector: &str, pairs: &[(&str, &str)]) -> bool {
        LabelSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{selector:?} should parse: {e}"))
            .matches(&labels(pairs))
    }

    #[test]
    fn every_operator_matches_as_the_server_does() {
        let web = [("app", "web"), ("tier", "front"), ("replicas", "3")];
        assert!(matches("", &web));
        assert!(matches("app=web", &web));
        assert!(matches("app==web", &web));
        assert!(!matches("app=db", &web));
        assert!(matches("app!=db", &web));
        assert!(
            matches("missing!=x", &web),
            "!= is true when the label is absent"
        );
        assert!(matches("app in (web,db)", &web));
        assert!(!matches("app in (db)", &web));
        assert!(matches("app notin (db)", &web));
        assert!(
            matches("missing notin (db)", &web),
            "notin is true when absent"
        );
        assert!(matches("app", &web));
        assert!(!matches("missing", &web));
        assert!(matches("!missing", &web));
        assert!(!matches("!app", &web));
        assert!(matches("replicas>2", &web));
        assert!(!matches("replicas>3", &web));
        assert!(matches("replicas<4", &web));
        assert!(
            !matches("app>1", &web),
            "non-integer label never matches gt"
        );
        assert!(matches("app=web,tier=front", &web));
        assert!(!matches("app=web,tier=back", &web));
        assert!(matches("  app = web , tier in ( front , back ) ", &web));
    }

    #[test]
    fn in_and_notin_may_be_label_names() {
        assert!(matches("in=x", &[("in", "x")]));
        assert!(matches("notin", &[("notin", "")]));
        assert!(matches("app in (in,notin)", &[("app", "notin")]));
    }

    #[test]
    fn empty_values() {
        assert!(matches("app=", &[("app", "")]));
        assert!(!matches("app=", &[]));
        assert!(matches("app in ()", &[("app", "")]));
        assert!(matches("app in (,a)", &[("app", "")]));
        assert!(matches("app in (a,)", &[("app", "")]));
        assert!(matches("app in (a,,b)", &[("app", "")]));
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let s = LabelSelector::parse("z=1, a in (c,b,b), !m, k, n notin (x), g>1").unwrap();
        assert_eq!(s.to_string(), "a in (b,c),g>1,k,!m,n notin (x),z=1");
        assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
        assert!(LabelSelector::parse("").unwrap().is_everything());
    }

    #[test]
    fn json_label_maps_match() {
        let object: serde_json::Value =
            serde_json::json!({"metadata": {"labels": {"app": "web", "n": 1}}});
        let map = object["metadata"]["labels"].as_object().unwrap();
        assert!(LabelSelector::parse("app=web").unwrap().matches(map));
        assert!(
            LabelSelector::parse("!n").unwrap().matches(map),
            "non-string value is absent"
        );
    }

    fn parse_error(selector: &str) -> String {
        match LabelSelector::parse(selector) {
            Ok(s) => panic!("{selector:?} parsed as {s:?}, expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_are_the_servers() {
        assert_eq!(
            parse_error("app=web,"),
            "found '', expected: identifier after ','"
        );
        assert_eq!(
            parse_error("app=web tier=x"),
            "found 'tier', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_error("=web"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_error("app in web"),
            "unable to parse requirement: found 'web' expected: '('"
        );
        assert_eq!(
            parse_error("app in (web"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            parse_error("app (web)"),
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_error("app=b@d"),
            "unable to parse requirement: values[0][app]: Invalid value: \"b@d\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(parse_error("-app=x").starts_with(
            "unable to parse requirement: key: Invalid value: \"-app\": name part must consist"
        ));
        assert_eq!(
            parse_error("n>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(
            parse_error("app=(x)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            parse_error("app=<"),
            "unable to parse requirement: found '<', expected: identifier"
        );
        assert_eq!(
            parse_error("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            parse_error("app in (a b)"),
            "unable to parse requirement: found 'b', expected: ',' or ')'"
        );
    }
}
