//! Kubernetes resource quantities (`64M`, `1Gi`, `1.5G`, `1e9`) read as whole bytes.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid quantity {quantity:?}: {why}")]
pub struct QuantityError {
    pub quantity: String,
    pub why: &'static str,
}

/// The quantity in bytes, rounded up as Kubernetes rounds `Quantity.Value()`.
pub fn parse_bytes(quantity: &str) -> Result<u64, QuantityError> {
    let error = |why| QuantityError {
        quantity: quantity.to_string(),
        why,
    };
    let text = quantity.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    if text.starts_with('-') {
        return Err(error("must not be negative"));
    }
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(error("no number"));
    }
    if fraction.contains('.') {
        return Err(error("more than one decimal point"));
    }
    // The value is digits / 10^fraction_len * 2^binary_exp * 10^decimal_exp.
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| error("too many digits"))?;
    let (binary_exp, decimal_exp): (u32, i32) = match suffix {
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
            let exp: i32 = exponent[1..].parse().map_err(|_| error("unknown suffix"))?;
            (0, exp)
        }
        _ => return Err(error("unknown suffix")),
    };
    let decimal_exp = decimal_exp - i32::try_from(fraction.len()).map_err(|_| error("too long"))?;
    let too_large = || error("too large");
    let mut numerator = digits
        .checked_mul(1u128 << binary_exp)
        .ok_or_else(too_large)?;
    let mut denominator: u128 = 1;
    if decimal_exp >= 0 {
        let scale = 10u128
            .checked_pow(decimal_exp.unsigned_abs())
            .ok_or_else(too_large)?;
        numerator = numerator.checked_mul(scale).ok_or_else(too_large)?;
    } else {
        denominator = 10u128
            .checked_pow(decimal_exp.unsigned_abs())
            .ok_or_else(|| error("too precise"))?;
    }
    u64::try_from(numerator.div_ceil(denominator)).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_bytes() {
        let cases: [(&str, u64); 14] = [
            ("64M", 64_000_000),
            ("64Mi", 64 << 20),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("1.5Gi", 3 << 29),
            ("0.5M", 500_000),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("1E3", 1000),
            ("1k", 1000),
            ("+2Ki", 2048),
            ("1500m", 2),
            (".5Ki", 512),
            ("1Ti", 1 << 40),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bytes(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_quantities_say_why() {
        let cases = [
            ("", "no number"),
            ("Gi", "no number"),
            ("-1Gi", "must not be negative"),
            ("12XB", "unknown suffix"),
            ("1.2.3", "more than one decimal point"),
            ("16Ei", "too large"),
            ("1e100", "too large"),
        ];
        for (text, why) in cases {
            assert_eq!(parse_bytes(text).map_err(|e| e.why), Err(why), "{text}");
        }
        assert_eq!(
            parse_bytes("12XB").unwrap_err().to_string(),
            r#"invalid quantity "12XB": unknown suffix"#
        );
    }
}
