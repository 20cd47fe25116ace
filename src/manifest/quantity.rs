//! Kubernetes resource quantities: `100m`, `0.5`, `128Mi`, `1G`, `1e3`.

use serde::Serialize;

/// CPU in thousandths of a core (`100m` is 100, `2` is 2000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CpuMillis(pub u64);

/// Memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Bytes(pub u64);

impl std::fmt::Display for Bytes {
    /// In the largest binary unit that divides it (`1Gi`, `512Mi`), as
    /// Kubernetes prints a quantity; plain bytes otherwise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [(&str, u64); 5] = [
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ];
        match UNITS
            .iter()
            .find(|(_, size)| self.0 >= *size && self.0 % size == 0)
        {
            Some((unit, size)) => write!(f, "{}{unit}", self.0 / size),
            None => write!(f, "{}", self.0),
        }
    }
}

impl CpuMillis {
    /// Parses a CPU quantity; anything finer than `1m` rounds up to the next
    /// millicore, as Kubernetes does (`0.0001` is `1m`).
    pub fn parse(text: &str) -> Result<CpuMillis, QuantityError> {
        Quantity::parse(text)?
            .scaled_ceil(3)
            .map(CpuMillis)
            .ok_or(QuantityError::TooLarge)
    }
}

impl Bytes {
    /// Parses a memory quantity; a fraction of a byte rounds up to a byte.
    pub fn parse(text: &str) -> Result<Bytes, QuantityError> {
        Quantity::parse(text)?
            .scaled_ceil(0)
            .map(Bytes)
            .ok_or(QuantityError::TooLarge)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "is not a quantity (expected a number with an optional suffix such as `m`, `Mi` or `G`)"
    )]
    Syntax,
    #[error("must not be negative")]
    Negative,
    #[error("is too large")]
    TooLarge,
}

/// A non-negative quantity in Kubernetes' grammar, exactly:
///
/// ```text
/// <quantity>        ::= <signedNumber><suffix>
/// <signedNumber>    ::= <number> | <sign><number>
/// <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
/// <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
/// <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
/// <decimalSI>       ::= m | "" | k | M | G | T | P | E
/// <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
/// ```
///
/// Its value is `mantissa * 10^exp10 * 2^exp2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    mantissa: u128,
    exp10: i64,
    exp2: u32,
}

/// Significant digits kept; Kubernetes itself keeps fewer for display.
const MAX_DIGITS: usize = 36;

impl Quantity {
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (int, frac) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(QuantityError::Syntax);
        }
        let (exp10, exp2) = match suffix {
            "" => (0, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            _ => {
                let exponent = suffix
                    .strip_prefix(['e', 'E'])
                    .ok_or(QuantityError::Syntax)?;
                let digits = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QuantityError::Syntax);
                }
                // Huge exponents are clamped: they only decide "zero" or "too large".
                let value: i64 = exponent.parse().unwrap_or(if exponent.starts_with('-') {
                    -1_000_000
                } else {
                    1_000_000
                });
                (value.clamp(-1_000_000, 1_000_000), 0)
            }
        };
        // Digits without leading zeros of the integer part and trailing
        // zeros of the fraction: the mantissa, scaled by the fraction length.
        let frac = frac.trim_end_matches('0');
        let mut digits: String = int.trim_start_matches('0').to_string();
        digits.push_str(frac);
        let mut exp10 = exp10 - i64::try_from(frac.len()).unwrap_or(i64::MAX / 2);
        let digits = digits.trim_start_matches('0');
        let mantissa = if digits.is_empty() {
            0
        } else if digits.len() > MAX_DIGITS {
            // Keep the leading digits, rounding up so nothing is lost downward.
            let dropped = digits.len() - MAX_DIGITS;
            exp10 += i64::try_from(dropped).unwrap_or(i64::MAX / 2);
            let kept: u128 = digits[..MAX_DIGITS]
                .parse()
                .map_err(|_| QuantityError::Syntax)?;
            let rest_nonzero = digits[MAX_DIGITS..].bytes().any(|b| b != b'0');
            kept + u128::from(rest_nonzero)
        } else {
            digits.parse().map_err(|_| QuantityError::Syntax)?
        };
        if negative && mantissa != 0 {
            return Err(QuantityError::Negative);
        }
        Ok(Quantity {
            mantissa,
            exp10,
            exp2,
        })
    }

    /// The value times `10^scale`, rounded up to an integer; `None` when it
    /// does not fit in a u64.
    pub fn scaled_ceil(self, scale: i64) -> Option<u64> {
        if self.mantissa == 0 {
            return Some(0);
        }
        let mut value = self.mantissa.checked_mul(1u128.checked_shl(self.exp2)?)?;
        let exp10 = self.exp10 + scale;
        if exp10 >= 0 {
            for _ in 0..exp10 {
                value = value.checked_mul(10)?;
            }
        } else {
            for _ in 0..(-exp10) {
                if value == 1 {
                    // Any positive value below one rounds up to one.
                    break;
                }
                value = value.div_ceil(10);
            }
        }
        u64::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_cpu(text: &str, expected: Result<u64, QuantityError>) {
        assert_eq!(
            CpuMillis::parse(text).map(|c| c.0),
            expected,
            "cpu {text:?}"
        );
    }

    fn check_memory(text: &str, expected: Result<u64, QuantityError>) {
        assert_eq!(Bytes::parse(text).map(|b| b.0), expected, "memory {text:?}");
    }

    #[test]
    fn cpu_quantities() {
        check_cpu("100m", Ok(100));
        check_cpu("0.5", Ok(500));
        check_cpu(".5", Ok(500));
        check_cpu("1.", Ok(1000));
        check_cpu("2", Ok(2000));
        check_cpu("+1", Ok(1000));
        check_cpu("1e3", Ok(1_000_000));
        check_cpu("1E-3", Ok(1));
        check_cpu("1k", Ok(1_000_000));
        check_cpu("0", Ok(0));
        check_cpu("-0", Ok(0));
        check_cpu("000.000", Ok(0));
        // Below a millicore rounds up, like Kubernetes.
        check_cpu("0.0001", Ok(1));
        check_cpu("100u", Err(QuantityError::Syntax));
        check_cpu("1.5m", Ok(2));
        check_cpu("1e-100", Ok(1));
        check_cpu("0e999999999999999999", Ok(0));
        check_cpu("1e999999999999999999", Err(QuantityError::TooLarge));
        check_cpu("-100m", Err(QuantityError::Negative));
        check_cpu("-1", Err(QuantityError::Negative));
    }

    #[test]
    fn memory_quantities() {
        check_memory("128Mi", Ok(128 * 1024 * 1024));
        check_memory("1Ki", Ok(1024));
        check_memory("1Ei", Ok(1 << 60));
        check_memory("1G", Ok(1_000_000_000));
        check_memory("1.5Gi", Ok(1_610_612_736));
        check_memory("1e3", Ok(1000));
        check_memory("129e6", Ok(129_000_000));
        check_memory("100m", Ok(1));
        check_memory("16Ei", Err(QuantityError::TooLarge));
        check_memory(
            "99999999999999999999999999999999999999999999",
            Err(QuantityError::TooLarge),
        );
        check_memory("0.00000000000000000000000000000000000000000000001", Ok(1));
    }

    #[test]
    fn garbage_is_rejected() {
        for text in [
            "", "-", "+", ".", "..", "1.2.3", "Mi", "1 Mi", " 1", "1Mi ", "1mi", "1KB", "1e",
            "1e+", "1ee3", "1e3Mi", "1Gi1", "0x10", "1_000", "--1", "+-1", "ten", "1.5.Mi",
        ] {
            assert_eq!(Bytes::parse(text), Err(QuantityError::Syntax), "{text:?}");
        }
    }
}
