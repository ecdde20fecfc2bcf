//! The QR code printed on Chinese VAT invoices (增值税发票), as far as the
//! duplicate-invoice guard needs it: which invoice a page shows.
//!
//! The payload is comma-separated:
//! `01,<type>,<invoice code>,<invoice number>,<amount>,<YYYYMMDD>,<check code>,<crc>,`.
//! Fully digitised invoices (全电发票) leave the code empty and carry a
//! 20-digit number. Anything else is not a VAT invoice QR and yields `None`,
//! so a cover code or a random QR is never taken for an invoice.

/// The fields that identify an invoice, plus what a reviewer wants to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VatInvoice {
    /// Two digits: 01 special, 04 ordinary, 10 electronic ordinary, ...
    pub kind: String,
    /// 10 or 12 digits; empty for fully digitised invoices.
    pub code: String,
    /// 8 digits, or 20 for fully digitised invoices.
    pub number: String,
    pub amount: String,
    /// YYYYMMDD.
    pub date: String,
}

fn digits(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn decimal(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.len() <= 15
        && frac.len() <= 2
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a barcode's text; `None` when it is not a VAT invoice QR.
pub fn parse(text: &str) -> Option<VatInvoice> {
    let fields: Vec<&str> = text.trim().split(',').map(str::trim).collect();
    if fields.len() < 6 || fields[0] != "01" || !digits(fields[1], &[2]) {
        return None;
    }
    let (code, number) = (fields[2], fields[3]);
    let numbered = if code.is_empty() {
        digits(number, &[20])
    } else {
        digits(code, &[10, 12]) && digits(number, &[8])
    };
    if !numbered || !decimal(fields[4]) || !digits(fields[5], &[8]) {
        return None;
    }
    Some(VatInvoice {
        kind: fields[1].to_owned(),
        code: code.to_owned(),
        number: number.to_owned(),
        amount: fields[4].to_owned(),
        date: fields[5].to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            (
                "01,10,044031900111,12345678,100.00,20240105,12345678901234567890,ABCD,",
                ("10", "044031900111", "12345678", "100.00", "20240105"),
            ),
            (
                "01,04,3200191130,00123456,1234.5,20231231,,",
                ("04", "3200191130", "00123456", "1234.5", "20231231"),
            ),
            (
                "01,32,,24312000000012345678,88,20240301,,1A2B",
                ("32", "", "24312000000012345678", "88", "20240301"),
            ),
            (
                " 01,01,1100182130,08471212,5000.00,20190101,,9C3D, \n",
                ("01", "1100182130", "08471212", "5000.00", "20190101"),
            ),
        ];
        for (text, (kind, code, number, amount, date)) in ok {
            assert_eq!(
                parse(text),
                Some(VatInvoice {
                    kind: kind.into(),
                    code: code.into(),
                    number: number.into(),
                    amount: amount.into(),
                    date: date.into(),
                }),
                "{text}"
            );
        }
        let bad = [
            "",
            "IMC0123456789",
            "https://example.com/?a=1,2,3",
            "02,10,044031900111,12345678,100.00,20240105,,",
            "01,10,044031900111,12345678,100.00",
            "01,10,04403190011,12345678,100.00,20240105,,",
            "01,10,044031900111,1234567,100.00,20240105,,",
            "01,10,,12345678,100.00,20240105,,",
            "01,10,044031900111,12345678,1e5,20240105,,",
            "01,10,044031900111,12345678,100.00,2024-01-05,,",
            "01,1x,044031900111,12345678,100.00,20240105,,",
        ];
        for text in bad {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
