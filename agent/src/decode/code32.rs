//! Code 32 (Italian pharmacode): a Code 39 symbol of six base-32 characters
//! that stands for a nine-digit number (eight digits and a mod-10 check),
//! printed with a leading "A". Read as Code 39 it looks like noise ("0X9C5B"),
//! so a Code 39 text that is a valid Code 32 is also reported decoded.

/// Base-32 digits: 0-9 and the letters without the vowels A, E, I, O.
const DIGITS: &[u8; 32] = b"0123456789BCDFGHJKLMNPQRSTUVWXYZ";

/// The pharmacode ("A" and nine digits) a Code 39 text stands for, if it is
/// exactly six base-32 characters whose value has a valid check digit.
pub(super) fn from_code39(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    if bytes.len() != 6 {
        return None;
    }
    let mut value: u64 = 0;
    for b in bytes {
        let digit = DIGITS.iter().position(|d| d == b)?;
        value = value * 32 + digit as u64;
    }
    if value > 999_999_999 {
        return None;
    }
    let digits = format!("{value:09}");
    let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
    // Luhn-style: every second digit (from the second) doubled, digits of the product summed.
    let sum: u32 = d[..8]
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                (2 * x) % 10 + 2 * x / 10
            } else {
                x
            }
        })
        .sum();
    (sum % 10 == d[8]).then(|| format!("A{digits}"))
}

#[cfg(test)]
mod tests {
    use super::from_code39;

    /// Encodes a pharmacode's nine digits the way Code 32 printers do.
    fn to_code39(digits: u64) -> String {
        let mut v = digits;
        let mut out = vec![0u8; 6];
        for slot in out.iter_mut().rev() {
            *slot = super::DIGITS[(v % 32) as usize];
            v /= 32;
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn valid_pharmacodes_round_trip() {
        for base in [1_234_567u64, 12_345_678, 98_765_432, 0] {
            let check = (0..10)
                .find(|c| from_code39(&to_code39(base * 10 + c)).is_some())
                .unwrap();
            let text = to_code39(base * 10 + check);
            assert_eq!(
                from_code39(&text).unwrap(),
                format!("A{:09}", base * 10 + check)
            );
            // Exactly one check digit is valid.
            let wrong = (check + 1) % 10;
            assert_eq!(from_code39(&to_code39(base * 10 + wrong)), None);
        }
    }

    #[test]
    fn check_digit_follows_the_ministry_rule() {
        // 1+3+5+7 plus 4+8+(12-9)+(16-9) = 38: check digit 8.
        assert_eq!(from_code39(&to_code39(123_456_788)).unwrap(), "A123456788");
        assert_eq!(from_code39(&to_code39(123_456_787)), None);
    }

    #[test]
    fn other_code39_texts_are_not_pharmacodes() {
        for text in ["PATCHT", "ASN00123", "ABC123", "12AB", "ZZZZZZ", "0000A0"] {
            assert_eq!(from_code39(text), None, "{text}");
        }
    }
}
