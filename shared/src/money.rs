//! Money amounts as exact decimal text: what the ERP sent is what is stored
//! and shown, digit for digit ("1280.50" stays "1280.50"), with no binary
//! floating point anywhere on the way.
//!
//! The accepted form is an optional leading `-`, 1 to [`MAX_INTEGER_DIGITS`]
//! digits, and optionally a `.` followed by 1 to [`MAX_FRACTION_DIGITS`]
//! digits. No `+`, no exponent, no thousands separators, no spaces inside;
//! surrounding whitespace is trimmed.

/// Digits before the point: 15 keeps every amount exact even in a tool that
/// does read it as an f64 (2^53 > 10^15).
pub const MAX_INTEGER_DIGITS: usize = 15;
/// Digits after the point: enough for unit prices and exchange-rate
/// conversions, which use more than the two places of a currency.
pub const MAX_FRACTION_DIGITS: usize = 6;
/// The longest accepted amount, sign and point included.
pub const MAX_AMOUNT_LEN: usize = 1 + MAX_INTEGER_DIGITS + 1 + MAX_FRACTION_DIGITS;

/// Why a text is not an amount, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amount {text:?} {why}")]
pub struct AmountError {
    pub text: String,
    pub why: &'static str,
}

/// Checks `text` (trimmed) as a decimal amount and returns it exactly as
/// written, without its surrounding whitespace.
pub fn parse_amount(text: &str) -> Result<&str, AmountError> {
    let text = text.trim();
    let fail = |why| AmountError {
        // Bounded: the text goes back into an error message.
        text: text.chars().take(MAX_AMOUNT_LEN + 8).collect(),
        why,
    };
    if text.is_empty() {
        return Err(fail("is empty"));
    }
    if text.len() > MAX_AMOUNT_LEN {
        return Err(fail("is too long"));
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(
            "is not a decimal number (digits with an optional '-' and '.'; no exponent or separators)",
        ));
    }
    if int.len() > MAX_INTEGER_DIGITS {
        return Err(fail("has more than 15 digits before the point"));
    }
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("needs digits after the point"));
        }
        if frac.len() > MAX_FRACTION_DIGITS {
            return Err(fail("has more than 6 digits after the point"));
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_kept_exactly_as_written() {
        for (given, kept) in [
            ("0", "0"),
            ("12", "12"),
            ("-3.5", "-3.5"),
            ("1280.50", "1280.50"),
            ("0.000001", "0.000001"),
            ("007", "007"),
            ("  42.10 ", "42.10"),
            ("123456789012345.67", "123456789012345.67"),
            ("-999999999999999.999999", "-999999999999999.999999"),
        ] {
            assert_eq!(parse_amount(given), Ok(kept), "{given:?}");
        }
    }

    #[test]
    fn anything_but_plain_decimal_text_is_refused() {
        for bad in [
            "",
            " ",
            "-",
            "+1",
            "1.",
            ".5",
            "-.5",
            "1e5",
            "1E5",
            "1e-2",
            "12,00",
            "1 000",
            "1. 5",
            "abc",
            "0x10",
            "1.1234567",
            "1000000000000000",
            "--1",
            "1-",
            "١٢٣",
            "１２",
            "NaN",
            "Infinity",
            "1\u{0}",
            "1.5\u{202e}",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_longest_accepted_amount_fits_the_length_bound() {
        let longest = format!(
            "-{}.{}",
            "9".repeat(MAX_INTEGER_DIGITS),
            "9".repeat(MAX_FRACTION_DIGITS)
        );
        assert_eq!(longest.len(), MAX_AMOUNT_LEN);
        assert!(parse_amount(&longest).is_ok());
        assert!(parse_amount(&format!("{longest}9")).is_err());
        let error = parse_amount(&"1".repeat(10_000))
            .err()
            .map(|e| e.to_string());
        assert!(
            error.is_some_and(|e| e.len() < 200),
            "the error echoes a bounded text"
        );
    }
}
