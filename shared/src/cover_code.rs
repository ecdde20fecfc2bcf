//! Cover codes: the unique value printed on a cover sheet.
//!
//! Server-issued codes are `IMC` + 9 random Crockford base32 characters + one
//! Luhn mod 32 check character, e.g. `IMC7K3M9Q2XHA`. The check character
//! catches a misread or mistyped character; the fixed prefix and the pattern
//! keep other barcodes on a page (the QR of a VAT invoice, say) from ever being
//! taken for a cover. ERPs may push codes of their own that match one of the
//! configured [`CoverPatterns`].

use regex::Regex;
use std::fmt;

/// Prefix of every server-issued cover code.
pub const ISSUED_PREFIX: &str = "IMC";
const BODY_LEN: usize = 9;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The pattern used when an administrator has configured none.
pub const DEFAULT_PATTERN: &str = "^IMC[0-9A-HJKMNP-TV-Z]{10}$";

/// A cover code known to be well formed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CoverCode(String);

impl CoverCode {
    /// Builds an issued code from 45 random bits (only the low 45 are used).
    pub fn issue(random: u64) -> CoverCode {
        let mut body = [0u8; BODY_LEN];
        for (i, slot) in body.iter_mut().enumerate() {
            let shift = 5 * (BODY_LEN - 1 - i);
            *slot = ALPHABET[((random >> shift) & 31) as usize];
        }
        let check = ALPHABET[luhn_mod32_check(&body)];
        let mut code = String::with_capacity(ISSUED_PREFIX.len() + BODY_LEN + 1);
        code.push_str(ISSUED_PREFIX);
        code.extend(body.iter().map(|&b| b as char));
        code.push(check as char);
        CoverCode(code)
    }

    /// True when `text` has the issued shape and its check character fits.
    pub fn is_valid_issued(text: &str) -> bool {
        let Some(rest) = text.strip_prefix(ISSUED_PREFIX) else {
            return false;
        };
        let bytes = rest.as_bytes();
        if bytes.len() != BODY_LEN + 1 || !bytes.iter().all(|b| ALPHABET.contains(b)) {
            return false;
        }
        let check = ALPHABET[luhn_mod32_check(&bytes[..BODY_LEN])];
        bytes[BODY_LEN] == check
    }

    /// Wraps a code that was validated elsewhere (against the patterns).
    pub fn new_unchecked(text: impl Into<String>) -> CoverCode {
        CoverCode(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CoverCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn code_point(byte: u8) -> usize {
    ALPHABET.iter().position(|&c| c == byte).unwrap_or(0)
}

/// Luhn mod N (N = 32): the check character that makes the weighted sum 0.
fn luhn_mod32_check(body: &[u8]) -> usize {
    let n = ALPHABET.len();
    let mut factor = 2;
    let mut sum = 0;
    for &byte in body.iter().rev() {
        let addend = factor * code_point(byte);
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / n + addend % n;
    }
    (n - sum % n) % n
}

/// The set of patterns that make a barcode a cover code.
#[derive(Debug, Clone)]
pub struct CoverPatterns {
    patterns: Vec<Regex>,
}

#[derive(Debug, thiserror::Error)]
#[error("cover code pattern {pattern:?} is not a valid regular expression: {source}")]
pub struct PatternError {
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

impl CoverPatterns {
    /// Patterns are anchored here, so `IMC\d+` cannot match inside a longer text.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<CoverPatterns, PatternError> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                let anchored = format!("^(?:{})$", p.trim_start_matches('^').trim_end_matches('$'));
                Regex::new(&anchored).map_err(|source| PatternError {
                    pattern: p.to_owned(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CoverPatterns { patterns })
    }

    /// A text is a cover code when a pattern matches it whole; a text of the
    /// issued shape must also carry a valid check character.
    pub fn is_cover(&self, text: &str) -> bool {
        let matches = self.patterns.iter().any(|p| p.is_match(text));
        if !matches {
            return false;
        }
        let issued_shape =
            text.starts_with(ISSUED_PREFIX) && text.len() == ISSUED_PREFIX.len() + BODY_LEN + 1;
        !issued_shape || CoverCode::is_valid_issued(text)
    }
}

impl Default for CoverPatterns {
    fn default() -> Self {
        // The default pattern is a literal that compiles; an empty set would
        // recognise nothing, which is the safe failure.
        CoverPatterns::new(&[DEFAULT_PATTERN]).unwrap_or(CoverPatterns {
            patterns: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_codes_validate_and_match_the_default_pattern() {
        let patterns = CoverPatterns::default();
        for random in [0u64, 1, 42, 0x1F_FFFF_FFFF, u64::MAX, 123_456_789_012] {
            let code = CoverCode::issue(random);
            assert_eq!(code.as_str().len(), 13, "{code}");
            assert!(CoverCode::is_valid_issued(code.as_str()), "{code}");
            assert!(patterns.is_cover(code.as_str()), "{code}");
        }
    }

    #[test]
    fn a_single_changed_character_is_caught() {
        let code = CoverCode::issue(987_654_321).to_string();
        let mut caught = 0;
        let mut tried = 0;
        for pos in 3..code.len() {
            for &replacement in ALPHABET {
                let mut bytes = code.clone().into_bytes();
                if bytes[pos] == replacement {
                    continue;
                }
                bytes[pos] = replacement;
                let altered = String::from_utf8(bytes).unwrap_or_default();
                tried += 1;
                if !CoverCode::is_valid_issued(&altered) {
                    caught += 1;
                }
            }
        }
        assert_eq!(caught, tried);
    }

    #[test]
    fn other_barcodes_are_not_covers() {
        let patterns = CoverPatterns::default();
        for text in [
            "01,10,3200154130,12345678,1234.56,20240105,12345678901234567890,ABCD,",
            "IMC",
            "XIMC7K3M9Q2XHA",
            "https://example.com/IMC7K3M9Q2XHA",
            "",
        ] {
            assert!(!patterns.is_cover(text), "{text}");
        }
    }

    #[test]
    fn erp_patterns_are_anchored() {
        let patterns = CoverPatterns::new(&["FIN-\\d{8}"]).unwrap_or_default();
        assert!(patterns.is_cover("FIN-20240001"));
        assert!(!patterns.is_cover("xFIN-20240001"));
        assert!(!patterns.is_cover("FIN-200240001"));
        assert!(CoverPatterns::new(&["("]).is_err());
    }
}
