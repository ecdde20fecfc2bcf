//! Text from callers that ends up in the database, on covers, in the desk and
//! in logs: identifiers must be what they look like, free text is tidied.
//!
//! Refused in identifiers (document numbers, cover codes, source systems,
//! document types, organisations, submitters, site, agent, user, token and
//! scheme names): NUL and every other C0 and C1 control character (including
//! DEL, tab and line breaks), and the bidirectional formatting characters
//! that make text display in another order than it is stored: the embeddings
//! and overrides U+202A–U+202E, the isolates U+2066–U+2069, and the marks
//! U+200E, U+200F and U+061C. A document number that reads `INV-1` on screen
//! but is stored as something else would let one pass for another.
//!
//! Free text (titles, reasons) is normalised to NFC and loses the same
//! characters rather than being refused: a title pasted from a right-to-left
//! document may carry marks the sender never saw, and dropping them changes
//! nothing a reader needs. Line breaks are kept only where the text may span
//! lines ([`clean_multiline_text`], for reasons); elsewhere a line break or tab
//! becomes a space.

use unicode_normalization::UnicodeNormalization;

/// The bidirectional formatting characters refused in identifiers and
/// dropped from free text.
pub const BIDI_CONTROLS: [char; 12] = [
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', // embeddings, overrides
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', // isolates
    '\u{200E}', '\u{200F}', '\u{061C}', // LRM, RLM, ALM
];

/// A field whose text is refused, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct TextError {
    pub field: String,
    pub message: String,
}

/// A control character (C0, DEL, C1) or a bidirectional formatting character.
pub fn is_refused(c: char) -> bool {
    c.is_control() || BIDI_CONTROLS.contains(&c)
}

/// Refuses an identifier holding a control or bidirectional formatting
/// character; the error names the character by code point (it may be invisible).
pub fn check_identifier(field: &str, value: &str) -> Result<(), TextError> {
    match value.chars().find(|c| is_refused(*c)) {
        None => Ok(()),
        Some(c) => Err(TextError {
            field: field.to_owned(),
            message: format!(
                "must not contain control or bidirectional formatting characters (found U+{:04X})",
                u32::from(c)
            ),
        }),
    }
}

/// One line of free text (a title): NFC, line breaks and tabs become spaces,
/// other control and bidirectional formatting characters are dropped.
pub fn clean_free_text(value: &str) -> String {
    clean(value, false)
}

/// Free text that may span lines (a reason): as [`clean_free_text`], but
/// line breaks are kept, as `\n`.
pub fn clean_multiline_text(value: &str) -> String {
    clean(value, true)
}

fn clean(value: &str, multiline: bool) -> String {
    // CR LF and a lone CR are one line break.
    let unified = value.replace("\r\n", "\n").replace('\r', "\n");
    unified
        .nfc()
        .filter_map(|c| match c {
            '\n' if multiline => Some('\n'),
            '\n' | '\t' => Some(' '),
            c if is_refused(c) => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_pass_in_any_script() {
        for ok in [
            "INV-2026-0001",
            "报销单 7",
            "HQ 总部",
            "Ünïcode",
            "a.b_c",
            "مرحبا",
        ] {
            assert_eq!(check_identifier("doc_no", ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn controls_and_bidi_formatting_are_refused_in_identifiers() {
        for bad in [
            "INV\u{0}1",
            "INV\u{1}1",
            "INV\t1",
            "INV\n1",
            "INV\r1",
            "INV\u{7f}1",
            "INV\u{80}1",
            "INV\u{85}1",
            "INV\u{9f}1",
            "INV\u{202a}1",
            "INV\u{202b}1",
            "INV\u{202c}1",
            "INV\u{202d}1",
            "INV-\u{202e}1-VNI",
            "INV\u{2066}1",
            "INV\u{2067}1",
            "INV\u{2068}1",
            "INV\u{2069}1",
            "INV\u{200e}1",
            "INV\u{200f}1",
            "INV\u{61c}1",
        ] {
            let error = check_identifier("doc_no", bad).err();
            assert_eq!(
                error.as_ref().map(|e| e.field.as_str()),
                Some("doc_no"),
                "{bad:?}"
            );
        }
        let error = check_identifier("org", "a\u{202e}b")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "org must not contain control or bidirectional formatting characters (found U+202E)"
            )
        );
    }

    #[test]
    fn free_text_is_nfc_and_loses_controls_and_bidi_formatting() {
        // "é" as e + combining acute becomes the one precomposed character.
        assert_eq!(clean_free_text("Caf\u{65}\u{301}"), "Caf\u{e9}");
        assert_eq!(clean_free_text("a\u{0}b\u{7}c\u{9b}d"), "abcd");
        assert_eq!(
            clean_free_text("pay \u{202e}001\u{202c} now"),
            "pay 001 now"
        );
        assert_eq!(clean_free_text("\u{2067}x\u{2069}\u{200f}"), "x");
        assert_eq!(
            clean_free_text("two\r\nlines\tand\ra tab"),
            "two lines and a tab"
        );
        assert_eq!(clean_free_text("差旅 Shanghai"), "差旅 Shanghai");
    }

    #[test]
    fn multiline_text_keeps_its_line_breaks_only() {
        assert_eq!(
            clean_multiline_text("first\r\nsecond\rthird\n\u{0}\u{202e}fourth\tend"),
            "first\nsecond\nthird\nfourth end"
        );
    }
}
