//! Kubernetes resource quantities (`500m`, `8Gi`, `1e3`), parsed exactly.
//!
//! Two reasons to parse rather than pass annotation text through: a typo (`8GB`) must be
//! reported against the annotation that holds it, not come back as an API error about a
//! ResourceQuota the user never wrote; and the API server canonicalizes quantities (`1024Mi`
//! is stored as `1Gi`, `0.5` as `500m`), so comparing text would see a change on every
//! reconcile and write forever. Values are compared in exact nano-units.

use std::fmt;

/// A quantity as an exact number of nano-units (10^-9), rounded up as the API server rounds
/// anything finer than `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i128);

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityError(String);

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The multiplier of a suffix as (power of two, power of ten).
fn suffix(s: &str) -> Option<(u32, i32)> {
    Some(match s {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            if !(-30..=30).contains(&power) {
                return None;
            }
            (0, power)
        }
        _ => return None,
    })
}

impl Quantity {
    /// Parses a non-negative quantity (`<digits>[.<digits>][suffix]`); quotas are never
    /// negative, so a sign is an error.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let bad = |why: &str| QuantityError(format!("{text:?} is not a quantity: {why}"));
        let number_end = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad("expected a number like 500m, 2, 1.5Gi"));
        }
        if fraction.contains('.') {
            return Err(bad("more than one decimal point"));
        }
        let (binary, decimal) =
            suffix(unit).ok_or_else(|| bad(&format!("unknown suffix {unit:?}")))?;
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(bad("too many digits"));
        }
        let too_large = || bad("too large");
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| too_large())?
        };
        // value = mantissa * 10^(decimal - fraction digits) * 2^binary, in units of 10^-9.
        let power = decimal + 9 - fraction.len() as i32;
        let scaled = mantissa
            .checked_mul(1i128 << binary)
            .ok_or_else(too_large)?;
        let nanos = if power >= 0 {
            10i128
                .checked_pow(power as u32)
                .and_then(|p| scaled.checked_mul(p))
                .ok_or_else(too_large)?
        } else {
            let divisor = 10i128
                .checked_pow(power.unsigned_abs())
                .ok_or_else(too_large)?;
            (scaled + divisor - 1) / divisor
        };
        Ok(Quantity(nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn canonical_forms_compare_equal() {
        assert_eq!(q("1024Mi"), q("1Gi"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1E3"), q("1000"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q(".5"), q("0.5"));
        assert_eq!(q("007"), q("7"));
        assert_eq!(q("0"), q("0m"));
        assert_eq!(q("2E"), q("2000P"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("16Ei") > q("16E"));
    }

    #[test]
    fn finer_than_nano_rounds_up() {
        assert_eq!(q("0.1n"), q("1n"));
        assert_eq!(q("1.0000000001"), q("1000000001n"));
    }

    #[test]
    fn bad_quantities_say_why() {
        for (text, why) in [
            ("", "expected a number"),
            ("8GB", "unknown suffix \"GB\""),
            ("-1", "expected a number"),
            ("1.2.3", "more than one decimal point"),
            ("Gi", "expected a number"),
            ("1e99", "unknown suffix \"e99\""),
            ("1 Gi", "unknown suffix \" Gi\""),
            ("99999999999999999999999999999999", "too many digits"),
            ("999999999999999999999999999Ei", "too large"),
        ] {
            let err = Quantity::parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{text:?} is not a quantity: {why}")),
                "{text}: {err}"
            );
        }
    }
}
