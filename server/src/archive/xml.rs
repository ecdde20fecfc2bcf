//! `data/document.xml`: the document record as XML, for archive systems
//! that take XML. Its schema is `docs/archive-document.xsd`; element and
//! attribute names are those of `document.json`.

use super::record::{ArchivedDocument, ArchivedImage};
use std::fmt::Write;

pub const NAMESPACE: &str = "urn:imc:archive:document:1";

pub fn render(doc: &ArchivedDocument) -> String {
    let mut x = Xml::default();
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.raw(&format!(
        "<document xmlns=\"{NAMESPACE}\" format=\"{}\">\n",
        escape(&doc.format)
    ));
    x.element("id", Some(&doc.id.to_string()));
    x.element("source_system", Some(&doc.source_system));
    x.element("doc_no", Some(&doc.doc_no));
    x.element("doc_type", Some(&doc.doc_type));
    x.element("org", Some(&doc.org));
    x.element("cover_code", Some(&doc.cover_code));
    x.element("title", doc.title.as_deref());
    x.element("amount", doc.amount.as_deref());
    x.element("submitter", doc.submitter.as_deref());
    x.element(
        "attachment_count",
        doc.attachment_count.map(|n| n.to_string()).as_deref(),
    );
    if let Some(check) = &doc.attachment_check {
        let verdict = serde_json::to_value(check.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        x.empty(
            "attachment_check",
            &[
                ("declared", check.declared.to_string()),
                ("scanned", check.scanned.to_string()),
                ("verdict", verdict),
            ],
        );
    }
    x.element(
        "metadata",
        doc.metadata.as_ref().map(|m| m.to_string()).as_deref(),
    );
    x.element("mode", Some(&doc.mode.to_string()));
    x.element("status", Some(doc.status.as_str()));
    x.element("reject_reason", doc.reject_reason.as_deref());
    x.element("created_at", Some(&doc.created_at));
    x.element("updated_at", Some(&doc.updated_at));
    if let Some(d) = &doc.decision {
        x.open(
            "decision",
            &[
                ("action", d.action.clone()),
                ("by", d.by.clone()),
                ("at", d.at.clone()),
            ],
        );
        x.element("reason", d.reason.as_deref());
        x.close("decision");
    }
    x.open("images", &[]);
    for image in &doc.images {
        write_image(&mut x, image);
    }
    x.close("images");
    x.open("conflicts", &[]);
    for c in &doc.conflicts {
        x.empty(
            "conflict",
            &[
                ("kind", c.kind.clone()),
                ("invoice_code", c.invoice_code.clone()),
                ("invoice_number", c.invoice_number.clone()),
                ("other_document_id", c.other_document_id.to_string()),
            ],
        );
    }
    x.close("conflicts");
    let mut audit = vec![("events", doc.audit.events.to_string())];
    if let (Some(first), Some(last)) = (doc.audit.first_id, doc.audit.last_id) {
        audit.push(("first_id", first.to_string()));
        audit.push(("last_id", last.to_string()));
    }
    x.empty("audit", &audit);
    x.raw("</document>\n");
    x.out
}

fn write_image(x: &mut Xml, image: &ArchivedImage) {
    let mut attributes = vec![
        ("page_no", image.page_no.to_string()),
        ("sha256", image.sha256.clone()),
        ("size", image.size.to_string()),
        ("content_type", image.content_type.clone()),
        ("kind", image.kind.clone()),
        ("blank", image.blank.to_string()),
    ];
    if let Some(file) = &image.file {
        attributes.push(("file", file.clone()));
    }
    x.open("image", &attributes);
    for barcode in &image.barcodes {
        x.text_with(
            "barcode",
            &[
                ("format", barcode.format.clone()),
                ("orientation", barcode.orientation.to_string()),
            ],
            &barcode.text,
        );
    }
    if let Some(i) = &image.invoice {
        let mut attributes = vec![
            ("invoice_type", i.invoice_type.clone()),
            ("invoice_number", i.invoice_number.clone()),
            ("date", i.date.clone()),
        ];
        for (name, value) in [
            ("invoice_code", &i.invoice_code),
            ("amount", &i.amount),
            ("check_code", &i.check_code),
        ] {
            if let Some(value) = value {
                attributes.push((name, value.clone()));
            }
        }
        x.empty("invoice", &attributes);
    }
    if let Some(p) = &image.purged {
        x.empty(
            "purged",
            &[("at", p.at.clone()), ("reason", p.reason.clone())],
        );
    }
    x.close("image");
}

#[derive(Default)]
struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn raw(&mut self, text: &str) {
        self.out.push_str(text);
    }

    fn indent(&mut self) {
        for _ in 0..=self.depth {
            self.out.push_str("  ");
        }
    }

    fn attributes(&mut self, attributes: &[(&str, String)]) {
        for (name, value) in attributes {
            let _ = write!(self.out, " {name}=\"{}\"", escape(value));
        }
    }

    /// `<name>text</name>`, or nothing for `None`.
    fn element(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.text_with(name, &[], text);
        }
    }

    fn text_with(&mut self, name: &str, attributes: &[(&str, String)], text: &str) {
        self.indent();
        let _ = write!(self.out, "<{name}");
        self.attributes(attributes);
        let _ = writeln!(self.out, ">{}</{name}>", escape(text));
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, String)]) {
        self.indent();
        let _ = write!(self.out, "<{name}");
        self.attributes(attributes);
        self.out.push_str("/>\n");
    }

    fn open(&mut self, name: &str, attributes: &[(&str, String)]) {
        self.indent();
        let _ = write!(self.out, "<{name}");
        self.attributes(attributes);
        self.out.push_str(">\n");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }
}

/// Text as XML character data: markup characters escaped, and characters
/// XML 1.0 cannot carry at all (most C0 controls) dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped_and_controls_dropped() {
        assert_eq!(escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
