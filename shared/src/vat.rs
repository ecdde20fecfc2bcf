//! The QR code on a Chinese VAT invoice (增值税发票), parsed into fields.
//!
//! The text is comma-separated:
//! `01,<type>,<invoice code>,<invoice number>,<amount>,<YYYYMMDD>,<check code>,<crc>,`
//! Fully digital e-invoices (全电/数电发票) leave the code empty and carry a
//! 20-digit number; special invoices often leave the check code empty. Such a
//! QR is never a cover; the parse adds metadata to its page at the desk and
//! feeds the server's duplicate-invoice guard. Pure: no I/O.

/// Longest QR text considered: real ones are under 100 characters.
const MAX_TEXT: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VatInvoice {
    /// Two digits: 01 special, 04 ordinary, 10 electronic ordinary, 31/32 fully digital, ...
    pub invoice_type: String,
    /// 发票代码: 10 or 12 digits; `None` on fully digital invoices.
    pub invoice_code: Option<String>,
    /// 发票号码: 8 digits, or 20 on fully digital invoices.
    pub invoice_number: String,
    /// Amount before tax as written, e.g. `1234.50`; kept as text so no cent is lost.
    pub amount: Option<String>,
    /// Issue date as `YYYY-MM-DD`.
    pub date: String,
    /// 校验码 (often only its last six digits are asked for); `None` when empty.
    pub check_code: Option<String>,
}

impl VatInvoice {
    /// What makes two pages the same invoice for the duplicate-invoice
    /// guard: the code (empty on fully digital invoices) and the number.
    pub fn key(&self) -> (&str, &str) {
        (
            self.invoice_code.as_deref().unwrap_or_default(),
            &self.invoice_number,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VatError {
    #[error("not a VAT invoice QR (it should start with `01,`)")]
    NotVatQr,
    #[error("VAT invoice QR has {0} fields, at least 6 are needed")]
    TooFewFields(usize),
    #[error("VAT invoice type {0:?} is not two digits")]
    Type(String),
    #[error("VAT invoice code {0:?} is not 10 or 12 digits")]
    Code(String),
    #[error("VAT invoice number {0:?} is not 8 digits (or 20 without a code)")]
    Number(String),
    #[error("VAT invoice amount {0:?} is not a decimal amount")]
    Amount(String),
    #[error("VAT invoice date {0:?} is not a YYYYMMDD date")]
    Date(String),
    #[error("VAT invoice check code {0:?} is not alphanumeric")]
    CheckCode(String),
}

fn digits(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn amount_ok(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (whole, cents) = s.split_once('.').unwrap_or((s, ""));
    !whole.is_empty()
        && whole.len() <= 15
        && whole.bytes().all(|b| b.is_ascii_digit())
        && cents.len() <= 2
        && cents.bytes().all(|b| b.is_ascii_digit())
        && !(s.contains('.') && cents.is_empty())
}

/// The invoice a page shows: the first of its barcode texts that is a VAT
/// invoice QR (one invoice per page).
pub fn first_on_page<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<VatInvoice> {
    texts.into_iter().find_map(|text| parse(text).ok())
}

/// Parses a VAT invoice QR text; anything else is an error saying why.
pub fn parse(text: &str) -> Result<VatInvoice, VatError> {
    let text = text.trim();
    if text.len() > MAX_TEXT || !text.starts_with("01,") {
        return Err(VatError::NotVatQr);
    }
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    // version, type, code, number, amount, date are required; check code and crc may be missing.
    if fields.len() < 6 {
        return Err(VatError::TooFewFields(fields.len()));
    }
    let (kind, code, number, amount, date) =
        (fields[1], fields[2], fields[3], fields[4], fields[5]);
    let check = fields.get(6).copied().unwrap_or_default();
    if !digits(kind, &[2]) {
        return Err(VatError::Type(kind.to_owned()));
    }
    if !code.is_empty() && !digits(code, &[10, 12]) {
        return Err(VatError::Code(code.to_owned()));
    }
    let number_lens: &[usize] = if code.is_empty() { &[20] } else { &[8] };
    if !digits(number, number_lens) {
        return Err(VatError::Number(number.to_owned()));
    }
    if !amount.is_empty() && !amount_ok(amount) {
        return Err(VatError::Amount(amount.to_owned()));
    }
    let parsed = chrono::NaiveDate::parse_from_str(date, "%Y%m%d")
        .ok()
        .filter(|_| digits(date, &[8]))
        .ok_or_else(|| VatError::Date(date.to_owned()))?;
    if check.len() > 32 || !check.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(VatError::CheckCode(check.to_owned()));
    }
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(VatInvoice {
        invoice_type: kind.to_owned(),
        invoice_code: some(code),
        invoice_number: number.to_owned(),
        amount: some(amount),
        date: parsed.format("%Y-%m-%d").to_string(),
        check_code: some(check),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(
        kind: &str,
        code: Option<&str>,
        number: &str,
        amount: Option<&str>,
        date: &str,
        check: Option<&str>,
    ) -> VatInvoice {
        VatInvoice {
            invoice_type: kind.into(),
            invoice_code: code.map(Into::into),
            invoice_number: number.into(),
            amount: amount.map(Into::into),
            date: date.into(),
            check_code: check.map(Into::into),
        }
    }

    #[test]
    fn well_formed_invoices() {
        let cases = [
            (
                "01,10,044031900111,12345678,1234.50,20240131,12345678901234567890,A1B2,",
                inv(
                    "10",
                    Some("044031900111"),
                    "12345678",
                    Some("1234.50"),
                    "2024-01-31",
                    Some("12345678901234567890"),
                ),
            ),
            // Special invoice: no check code, 10-digit code, no trailing comma.
            (
                "01,01,3100201130,00123456,88000.00,20231215,,8F2C",
                inv(
                    "01",
                    Some("3100201130"),
                    "00123456",
                    Some("88000.00"),
                    "2023-12-15",
                    None,
                ),
            ),
            // Fully digital e-invoice: empty code, 20-digit number.
            (
                "01,32,,24312000000012345678,100,20240601,,3A7E,",
                inv(
                    "32",
                    None,
                    "24312000000012345678",
                    Some("100"),
                    "2024-06-01",
                    None,
                ),
            ),
            // Red-letter (negative) invoice, empty amount on another.
            (
                "01,04,044031900111,87654321,-12.3,20240229,111222,",
                inv(
                    "04",
                    Some("044031900111"),
                    "87654321",
                    Some("-12.3"),
                    "2024-02-29",
                    Some("111222"),
                ),
            ),
            (
                " 01,04,044031900111,87654321,,20240229 ",
                inv(
                    "04",
                    Some("044031900111"),
                    "87654321",
                    None,
                    "2024-02-29",
                    None,
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn the_duplicate_key_is_code_and_number() {
        let paper = parse("01,04,3200191130,00123456,1234.5,20231231,,").unwrap();
        assert_eq!(paper.key(), ("3200191130", "00123456"));
        let digital = parse("01,32,,24312000000012345678,88,20240301,,1A2B").unwrap();
        assert_eq!(digital.key(), ("", "24312000000012345678"));
    }

    #[test]
    fn malformed_inputs_say_why() {
        let cases = [
            ("", VatError::NotVatQr),
            ("IMC-0000-1234", VatError::NotVatQr),
            (
                "02,10,044031900111,12345678,1.00,20240131,1,",
                VatError::NotVatQr,
            ),
            ("01,10,044031900111", VatError::TooFewFields(3)),
            (
                "01,1,044031900111,12345678,1.00,20240131,1,",
                VatError::Type("1".into()),
            ),
            (
                "01,10,04403190011X,12345678,1.00,20240131,1,",
                VatError::Code("04403190011X".into()),
            ),
            (
                "01,10,044031900111,1234567,1.00,20240131,1,",
                VatError::Number("1234567".into()),
            ),
            (
                "01,32,,12345678,1.00,20240131,,",
                VatError::Number("12345678".into()),
            ),
            (
                "01,10,044031900111,12345678,1.234,20240131,1,",
                VatError::Amount("1.234".into()),
            ),
            (
                "01,10,044031900111,12345678,abc,20240131,1,",
                VatError::Amount("abc".into()),
            ),
            (
                "01,10,044031900111,12345678,1.,20240131,1,",
                VatError::Amount("1.".into()),
            ),
            (
                "01,10,044031900111,12345678,1.00,20240230,1,",
                VatError::Date("20240230".into()),
            ),
            (
                "01,10,044031900111,12345678,1.00,2024-01-31,1,",
                VatError::Date("2024-01-31".into()),
            ),
            (
                "01,10,044031900111,12345678,1.00,20240131,12 34,",
                VatError::CheckCode("12 34".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Err(want), "{text}");
        }
        for not_an_invoice in [
            "https://example.com/?a=1,2,3",
            "01,10,,12345678,1.00,20240105,,",
        ] {
            assert!(parse(not_an_invoice).is_err(), "{not_an_invoice}");
        }
        let long = format!("01,10,{}", "9".repeat(600));
        assert_eq!(parse(&long), Err(VatError::NotVatQr));
    }
}
