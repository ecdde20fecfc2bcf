//! What the QR of a cover sheet IMC prints carries, beyond the code.
//!
//! The Code 128 on a cover holds the cover code alone, as ERP-printed covers
//! do. The QR of an IMC-printed cover holds `IMC1|<cover code>|<attachment
//! count>|<key id>|<signature>`: the count empty when none was declared, so
//! the desk knows how many sheets should follow the cover without asking the
//! server, and an Ed25519 signature (base64url, no padding) over the first
//! three fields exactly as printed, by the server key `key id` (see
//! [`crate::cover_keys`]), so that a cover cannot be forged or its count
//! altered. Covers printed before signing carry the first three fields only.
//! A cover code that contains `|` cannot be framed: its QR holds the code
//! alone, as before. Pure: no I/O.

use crate::cover_keys::CoverKeys;

/// Starts every IMC cover QR payload; the digit is the format's version.
pub const PREFIX: &str = "IMC1|";
/// The largest attachment count a document may declare (附件张数).
pub const MAX_ATTACHMENT_COUNT: u32 = 10_000;

/// A cover QR payload read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverQr {
    pub code: String,
    /// The declared attachment count, when the payload carries a valid one.
    pub declared: Option<u32>,
    /// Why a count field that was present was not taken (not a number,
    /// negative, over the limit): the page is still a cover by its code.
    pub count_problem: Option<String>,
    /// The signature fields, when the payload has them.
    pub signature: Option<QrSignature>,
}

/// A cover QR's signature and what it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrSignature {
    pub key_id: String,
    /// Base64url, no padding.
    pub signature: String,
    /// The signed text: the payload up to the signature fields.
    pub message: String,
}

/// The word an unmatched packet's reason starts with when its cover's QR
/// signature failed.
pub const SIGNATURE_INVALID: &str = "cover_signature_invalid";

/// What a desk makes of a cover QR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// A cover by its code, with its count when that can be trusted.
    Cover {
        declared: Option<u32>,
        count_problem: Option<String>,
    },
    /// Not a cover: the QR is signed, and the signature fails. Why, for the clerk.
    Forged(String),
}

impl CoverQr {
    /// Checks the signature against the keys the desk holds. A signed QR
    /// must verify; an unsigned one (printed before covers were signed) is a
    /// cover by its code, and its count counts only at a desk that knows no
    /// keys, since anyone could print an unsigned count.
    pub fn judge(&self, keys: &CoverKeys) -> Judged {
        match &self.signature {
            Some(sig) => match keys.verify(&sig.key_id, sig.message.as_bytes(), &sig.signature) {
                Ok(()) => Judged::Cover {
                    declared: self.declared,
                    count_problem: self.count_problem.clone(),
                },
                Err(why) => Judged::Forged(format!(
                    "the QR of cover {} does not verify: {why}",
                    self.code
                )),
            },
            None if keys.is_empty() || (self.declared.is_none() && self.count_problem.is_none()) => {
                Judged::Cover {
                    declared: self.declared,
                    count_problem: self.count_problem.clone(),
                }
            }
            None => Judged::Cover {
                declared: None,
                count_problem: Some(
                    "the count on the cover is not signed (printed before covers were signed, or altered)"
                        .to_owned(),
                ),
            },
        }
    }
}

/// The QR text for a cover, unsigned: the framed payload, or the bare code
/// when the code cannot be framed.
pub fn encode(code: &str, declared: Option<u32>) -> String {
    if !can_frame(code) {
        return code.to_owned();
    }
    signed_message(code, declared)
}

/// Whether a cover code fits the framed payload.
pub fn can_frame(code: &str) -> bool {
    !code.contains('|')
}

/// The text a cover's signature covers: the first three fields.
pub fn signed_message(code: &str, declared: Option<u32>) -> String {
    let count = declared.map(|n| n.to_string()).unwrap_or_default();
    format!("{PREFIX}{code}|{count}")
}

/// The QR text for a cover signed by key `key_id` (`signature` over
/// [`signed_message`], base64url without padding).
pub fn encode_signed(code: &str, declared: Option<u32>, key_id: &str, signature: &str) -> String {
    if !can_frame(code) {
        return code.to_owned();
    }
    format!("{}|{key_id}|{signature}", signed_message(code, declared))
}

/// Reads a framed payload; `None` for any other text (a bare cover code, an
/// invoice QR). The code still has to match the cover patterns.
pub fn parse(text: &str) -> Option<CoverQr> {
    let rest = text.strip_prefix(PREFIX)?;
    let mut fields = rest.split('|');
    let code = fields.next().filter(|c| !c.is_empty())?.to_owned();
    let count_field = fields.next().unwrap_or_default();
    let (declared, count_problem) = match count_field {
        "" => (None, None),
        count => match parse_count(count) {
            Ok(n) => (Some(n), None),
            Err(why) => (None, Some(why)),
        },
    };
    // A key id without a signature is still a claim to be signed: it fails.
    let signature = fields.next().map(|key_id| QrSignature {
        key_id: key_id.to_owned(),
        signature: fields.next().unwrap_or_default().to_owned(),
        message: format!("{PREFIX}{code}|{count_field}"),
    });
    Some(CoverQr {
        code,
        declared,
        count_problem,
        signature,
    })
}

/// An attachment count: a plain decimal from 0 to [`MAX_ATTACHMENT_COUNT`].
pub fn parse_count(text: &str) -> Result<u32, String> {
    let shown: String = text.chars().take(20).collect();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 6 {
        return Err(format!(
            "attachment count {shown:?} is not a whole number from 0 to {MAX_ATTACHMENT_COUNT}"
        ));
    }
    match text.parse::<u32>() {
        Ok(n) if n <= MAX_ATTACHMENT_COUNT => Ok(n),
        _ => Err(format!(
            "attachment count {shown:?} is over {MAX_ATTACHMENT_COUNT}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_round_trips_with_and_without_a_count() {
        let framed = encode("IMC0123456789A", Some(3));
        assert_eq!(framed, "IMC1|IMC0123456789A|3");
        let read = parse(&framed).unwrap();
        assert_eq!(
            (read.code.as_str(), read.declared),
            ("IMC0123456789A", Some(3))
        );
        let none = parse(&encode("IMC0123456789A", None)).unwrap();
        assert_eq!((none.declared, none.count_problem), (None, None));
    }

    #[test]
    fn texts_that_are_not_payloads_are_left_alone() {
        assert_eq!(parse("IMC0123456789A"), None);
        assert_eq!(
            parse("01,10,044031900111,12345678,1234.50,20240131,x,"),
            None
        );
        assert_eq!(parse("IMC1||3"), None, "no code");
        assert_eq!(encode("A|B", Some(2)), "A|B", "unframeable codes stay bare");
    }

    #[test]
    fn a_bad_count_keeps_the_cover_and_says_why() {
        for bad in ["-1", "x", "10001", "99999999999999999999", "1.5", " 3"] {
            let read = parse(&format!("IMC1|IMC0123456789A|{bad}")).unwrap();
            assert_eq!(read.code, "IMC0123456789A", "{bad}");
            assert_eq!(read.declared, None, "{bad}");
            assert!(read.count_problem.is_some(), "{bad}");
        }
        let later = parse("IMC1|IMC0123456789A|2|0a0b0c0d|c2ln|more").unwrap();
        assert_eq!(
            later.declared,
            Some(2),
            "fields after the signature are ignored"
        );
        assert_eq!(later.signature.unwrap().message, "IMC1|IMC0123456789A|2");
    }

    mod signed {
        use super::*;
        use crate::cover_keys::{CoverKey, key_id};
        use base64::Engine;
        use ring::signature::{Ed25519KeyPair, KeyPair};

        fn pair(seed: u8) -> Ed25519KeyPair {
            Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
        }

        fn signed(pair: &Ed25519KeyPair, code: &str, declared: Option<u32>) -> String {
            let sig = pair.sign(signed_message(code, declared).as_bytes());
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
            encode_signed(code, declared, &key_id(pair.public_key().as_ref()), &sig)
        }

        fn keys(pairs: &[&Ed25519KeyPair]) -> CoverKeys {
            let published: Vec<CoverKey> = pairs
                .iter()
                .map(|p| CoverKey::new(p.public_key().as_ref()))
                .collect();
            CoverKeys::new(&published).0
        }

        const CODE: &str = "IMC0123456789A";

        #[test]
        fn a_signed_cover_is_a_cover_with_its_count() {
            let key = pair(1);
            let qr = parse(&signed(&key, CODE, Some(3))).unwrap();
            assert_eq!(
                qr.judge(&keys(&[&key])),
                Judged::Cover {
                    declared: Some(3),
                    count_problem: None
                }
            );
            let none = parse(&signed(&key, CODE, None)).unwrap();
            assert!(matches!(
                none.judge(&keys(&[&key])),
                Judged::Cover { declared: None, .. }
            ));
        }

        #[test]
        fn an_altered_count_or_code_or_an_unknown_key_is_forged() {
            let key = pair(1);
            let text = signed(&key, CODE, Some(3));
            let altered = text.replacen("|3|", "|4|", 1);
            let recoded = text.replacen(CODE, "IMC0123456789B", 1);
            for forged in [altered, recoded] {
                let judged = parse(&forged).unwrap().judge(&keys(&[&key]));
                assert!(
                    matches!(&judged, Judged::Forged(why) if why.contains("forged or altered")),
                    "{forged}: {judged:?}"
                );
            }
            let other = parse(&signed(&pair(2), CODE, Some(3))).unwrap();
            assert!(
                matches!(other.judge(&keys(&[&key])), Judged::Forged(why) if why.contains("does not know"))
            );
            let truncated = parse(&format!("{}|{}", encode(CODE, Some(3)), "0a0b0c0d")).unwrap();
            assert!(matches!(truncated.judge(&keys(&[&key])), Judged::Forged(_)));
        }

        #[test]
        fn a_rotated_key_keeps_earlier_covers_valid() {
            let (old, new) = (pair(1), pair(2));
            let printed_before = parse(&signed(&old, CODE, Some(2))).unwrap();
            assert!(matches!(
                printed_before.judge(&keys(&[&old, &new])),
                Judged::Cover {
                    declared: Some(2),
                    ..
                }
            ));
        }

        #[test]
        fn an_unsigned_count_counts_only_where_no_keys_are_known() {
            let unsigned = parse(&encode(CODE, Some(3))).unwrap();
            assert!(matches!(
                unsigned.judge(&CoverKeys::default()),
                Judged::Cover {
                    declared: Some(3),
                    count_problem: None
                }
            ));
            assert!(matches!(
                unsigned.judge(&keys(&[&pair(1)])),
                Judged::Cover {
                    declared: None,
                    count_problem: Some(_)
                }
            ));
            let bare = parse(&encode(CODE, None)).unwrap();
            assert_eq!(
                bare.judge(&keys(&[&pair(1)])),
                Judged::Cover {
                    declared: None,
                    count_problem: None
                },
                "no count, nothing to doubt"
            );
        }
    }
}
