//! The parameters of a mode: string fields of the reconciled object's `data` (a ConfigMap's
//! `data` holds only strings), parsed with errors that name the field and the bad value.

use serde_json::{Map, Value};
use trellis_guest::Error;

pub struct Params<'a> {
    data: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    pub fn new(data: &'a Map<String, Value>) -> Self {
        Params { data }
    }

    /// The field's text; a non-string value is an error naming the field.
    pub fn text(&self, field: &str) -> Result<Option<&'a str>, Error> {
        match self.data.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Error::permanent(format!(
                "data.{field}: expected a string, found {other}"
            ))),
        }
    }

    pub fn text_or(&self, field: &str, default: &'a str) -> Result<&'a str, Error> {
        Ok(self.text(field)?.unwrap_or(default))
    }

    /// A non-negative integer field; `None` when absent.
    pub fn number(&self, field: &str) -> Result<Option<u64>, Error> {
        self.text(field)?
            .map(|s| {
                s.trim().parse::<u64>().map_err(|_| {
                    Error::permanent(format!("data.{field}: {s:?} is not a non-negative integer"))
                })
            })
            .transpose()
    }

    pub fn number_or(&self, field: &str, default: u64) -> Result<u64, Error> {
        Ok(self.number(field)?.unwrap_or(default))
    }

    /// `true` or `false`; `None` when absent.
    pub fn flag(&self, field: &str) -> Result<Option<bool>, Error> {
        self.text(field)?
            .map(|s| match s.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(Error::permanent(format!(
                    "data.{field}: {other:?} is neither true nor false"
                ))),
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_names_bad_fields() {
        let data =
            json!({"count": "12", "bad": "x", "flag": "true", "odd": "maybe", "nested": {"a": 1}});
        let params = Params::new(data.as_object().unwrap());
        assert_eq!(params.number("count").unwrap(), Some(12));
        assert_eq!(params.number_or("absent", 7).unwrap(), 7);
        assert_eq!(
            params.number("bad").unwrap_err().to_string(),
            "data.bad: \"x\" is not a non-negative integer"
        );
        assert_eq!(params.flag("flag").unwrap(), Some(true));
        assert_eq!(
            params.flag("odd").unwrap_err().to_string(),
            "data.odd: \"maybe\" is neither true nor false"
        );
        assert_eq!(
            params.text("nested").unwrap_err().to_string(),
            "data.nested: expected a string, found {\"a\":1}"
        );
    }
}
