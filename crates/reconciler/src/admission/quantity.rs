//! Just enough of Kubernetes' resource quantities for the admission rules: the value of a
//! quantity such as `64M`, `1Gi`, `-5`, `512k` or `1e6`, to compare it with zero, `1M` and
//! another quantity.

use serde_json::Value;

/// The text of apimachinery's refusal of a malformed quantity.
pub const MALFORMED: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A quantity as written (for messages) and its value in base units.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub text: String,
    pub value: f64,
}

/// The quantity at `v`: `None` when absent or `null`, an error when it is not a quantity.
pub fn from_json(v: Option<&Value>) -> Result<Option<Quantity>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse(s).map(Some),
        Some(Value::Number(n)) => parse(&n.to_string()).map(Some),
        Some(_) => Err(MALFORMED.to_string()),
    }
}

/// Parses `[+-]number[suffix]`, the suffix one of the binary (`Ki`…`Ei`), decimal (`n`, `u`,
/// `m`, ``, `k`, `M`, `G`, `T`, `P`, `E`) or exponent (`e3`, `E-2`) forms.
pub fn parse(text: &str) -> Result<Quantity, String> {
    let bad = || MALFORMED.to_string();
    let s = text.trim();
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(split);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(bad());
    }
    let base: f64 = number.parse().map_err(|_| bad())?;
    let multiplier = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exp if exp.starts_with(['e', 'E']) => {
            let power: i32 = exp[1..].parse().map_err(|_| bad())?;
            10f64.powi(power)
        }
        _ => return Err(bad()),
    };
    Ok(Quantity {
        text: text.to_string(),
        value: sign * base * multiplier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_the_usual_forms() {
        for (text, want) in [
            ("64M", 64e6),
            ("1Gi", 1073741824.0),
            ("-5", -5.0),
            ("512k", 512e3),
            ("1e6", 1e6),
            ("0.5Mi", 524288.0),
            ("+2", 2.0),
            ("100m", 0.1),
        ] {
            assert_eq!(parse(text).unwrap().value, want, "{text}");
        }
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for text in ["", "M", "64MB", "1..2", "abc", "1e", "-"] {
            assert_eq!(parse(text), Err(MALFORMED.to_string()), "{text}");
        }
        assert_eq!(
            from_json(Some(&Value::Bool(true))),
            Err(MALFORMED.to_string())
        );
        assert_eq!(from_json(Some(&Value::Null)), Ok(None));
        assert_eq!(
            from_json(Some(&serde_json::json!(1024)))
                .unwrap()
                .unwrap()
                .value,
            1024.0
        );
    }
}
