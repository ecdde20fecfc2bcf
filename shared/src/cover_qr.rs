//! What the QR of a cover sheet IMC prints carries, beyond the code.
//!
//! The Code 128 on a cover holds the cover code alone, as ERP-printed covers
//! do. The QR of an IMC-printed cover holds `IMC1|<cover code>|<attachment
//! count>`, the count empty when none was declared, so the desk knows how many
//! sheets should follow the cover without asking the server. Fields after the
//! third are reserved (a signature will follow) and ignored by this reader.
//! A cover code that contains `|` cannot be framed: its QR holds the code
//! alone, as before. Pure: no I/O.

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
}

/// The QR text for a cover: the framed payload, or the bare code when the
/// code cannot be framed.
pub fn encode(code: &str, declared: Option<u32>) -> String {
    if code.contains('|') {
        return code.to_owned();
    }
    let count = declared.map(|n| n.to_string()).unwrap_or_default();
    format!("{PREFIX}{code}|{count}")
}

/// Reads a framed payload; `None` for any other text (a bare cover code, an
/// invoice QR). The code still has to match the cover patterns.
pub fn parse(text: &str) -> Option<CoverQr> {
    let rest = text.strip_prefix(PREFIX)?;
    let mut fields = rest.split('|');
    let code = fields.next().filter(|c| !c.is_empty())?.to_owned();
    let (declared, count_problem) = match fields.next().unwrap_or_default() {
        "" => (None, None),
        count => match parse_count(count) {
            Ok(n) => (Some(n), None),
            Err(why) => (None, Some(why)),
        },
    };
    Some(CoverQr {
        code,
        declared,
        count_problem,
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
        let later = parse("IMC1|IMC0123456789A|2|reserved|fields").unwrap();
        assert_eq!(later.declared, Some(2), "later fields are ignored");
    }
}
