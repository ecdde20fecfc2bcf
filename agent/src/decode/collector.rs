//! Accumulates decoded symbols for one page: de-duplication, cover detection.

use super::{FoundBarcode, Symbology};
use imc_pages::guard::guarded;

pub(super) struct Collector<'a> {
    is_cover: &'a (dyn Fn(&str) -> bool + Send + Sync),
    cover: Option<String>,
    found: Vec<FoundBarcode>,
}

impl<'a> Collector<'a> {
    pub fn new(is_cover: &'a (dyn Fn(&str) -> bool + Send + Sync)) -> Self {
        Self {
            is_cover,
            cover: None,
            found: Vec::new(),
        }
    }

    /// Records a decode. The same symbol is typically read by several rows or
    /// passes; only the first (symbology, text) sighting is kept.
    pub fn add(&mut self, symbology: Symbology, text: String, orientation: u16) {
        if text.is_empty() || self.contains(symbology, &text) {
            return;
        }
        // The predicate is caller code: a panic there must not take the agent down.
        if self.cover.is_none() && guarded(|| (self.is_cover)(&text)).unwrap_or(false) {
            self.cover = Some(text.clone());
        }
        self.found.push(FoundBarcode {
            symbology,
            text,
            orientation: orientation % 360,
        });
    }

    pub fn contains(&self, symbology: Symbology, text: &str) -> bool {
        self.found
            .iter()
            .any(|b| b.symbology == symbology && b.text == text)
    }

    pub fn has_cover(&self) -> bool {
        self.cover.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub fn has(&self, symbology: Symbology) -> bool {
        self.found.iter().any(|b| b.symbology == symbology)
    }

    pub fn finish(self) -> (Option<String>, Vec<FoundBarcode>) {
        (self.cover, self.found)
    }
}
