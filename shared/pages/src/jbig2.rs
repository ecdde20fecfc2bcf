//! JBIG2 (ITU-T T.88), the bitonal compression some scan-to-PDF tools use,
//! decoded with `hayro-jbig2` into a grey page (black 0, white 255).
//!
//! PDF embeds JBIG2 in the "embedded organization" (no file header); symbol
//! dictionaries shared between pages live in a separate `JBIG2Globals` stream.
//! The page size is read from the page information segment and checked
//! against the page limits before anything is decoded.

use super::{PageError, check_dimensions};
use crate::guard::guarded;
use hayro_jbig2::{DecodeSettings, Decoder, Globals, Page};
use image::GrayImage;

const FORMAT: &str = "PDF (JBIG2)";

fn decode_error(what: &str, e: impl std::fmt::Display) -> PageError {
    PageError::Decode {
        format: FORMAT,
        message: format!("{what}: {e}"),
    }
}

/// Decodes one embedded JBIG2 image. `width`/`height` are the PDF image's
/// declared size; the JBIG2 page must match it (a mismatch means the stream
/// belongs to something else, and trusting either size could overrun).
pub fn decode(
    data: &[u8],
    globals: Option<&[u8]>,
    width: u32,
    height: u32,
) -> Result<GrayImage, PageError> {
    check_dimensions(u64::from(width), u64::from(height), 1)?;
    // Lenient mode: real encoders break the letter of T.88 in small ways that
    // every PDF viewer tolerates.
    let settings = DecodeSettings::default();
    guarded(|| {
        let globals = globals
            .map(|g| Globals::new(g, &settings))
            .transpose()
            .map_err(|e| decode_error("JBIG2Globals", e))?;
        let page = Page::new_embedded(data, globals.as_ref(), &settings)
            .map_err(|e| decode_error("JBIG2 page", e))?;
        let (w, h) = (page.width(), page.height());
        check_dimensions(u64::from(w), u64::from(h), 1)?;
        if (w, h) != (width, height) {
            return Err(decode_error(
                "JBIG2 page",
                format!("{w}x{h} pixels where the PDF image says {width}x{height}"),
            ));
        }
        let mut sink = GraySink::new(w, h);
        page.decode(&mut sink)
            .map_err(|e| decode_error("JBIG2 page", e))?;
        Ok(sink.into_image())
    })
    .unwrap_or_else(|| {
        Err(decode_error(
            "JBIG2 page",
            "the decoder failed on this image",
        ))
    })
}

/// Collects the decoder's pixel stream into a white-initialised page; pixels
/// past the declared size are dropped rather than trusted.
struct GraySink {
    width: u32,
    height: u32,
    x: u32,
    y: u32,
    pixels: Vec<u8>,
}

impl GraySink {
    fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            x: 0,
            y: 0,
            pixels: vec![255; width as usize * height as usize],
        }
    }

    fn put(&mut self, black: bool, count: u32) {
        if self.y >= self.height {
            return;
        }
        let end = self.x.saturating_add(count).min(self.width);
        if black && end > self.x {
            let row = self.y as usize * self.width as usize;
            self.pixels[row + self.x as usize..row + end as usize].fill(0);
        }
        self.x = self.x.saturating_add(count);
    }

    fn into_image(self) -> GrayImage {
        let (w, h) = (self.width, self.height);
        // The buffer was allocated for exactly w*h pixels.
        GrayImage::from_raw(w, h, self.pixels).unwrap_or_else(|| GrayImage::new(w, h))
    }
}

impl Decoder for GraySink {
    fn push_pixel(&mut self, black: bool) {
        self.put(black, 1);
    }

    fn push_pixel_chunk(&mut self, black: bool, chunk_count: u32) {
        self.put(black, chunk_count.saturating_mul(8));
    }

    fn next_line(&mut self) {
        self.x = 0;
        self.y = self.y.saturating_add(1);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::Luma;

    /// One JBIG2 segment header (T.88 7.2) with a one-byte page association
    /// and no referred-to segments, followed by its data.
    fn segment(number: u32, kind: u8, page: u8, data: &[u8]) -> Vec<u8> {
        let mut out = number.to_be_bytes().to_vec();
        out.push(kind);
        out.push(0); // no referred-to segments
        out.push(page);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    /// An embedded-organization JBIG2 stream for `page`: page information,
    /// one immediate generic region coded with MMR (T.6, written by the `fax`
    /// crate), end of page. Real encoders use arithmetic coding and symbol
    /// dictionaries too; no Rust encoder for those exists, so the generic MMR
    /// region is what a test can write.
    pub(crate) fn mmr_stream(page: &GrayImage) -> Vec<u8> {
        let (w, h) = page.dimensions();
        let mut info = Vec::new();
        info.extend_from_slice(&w.to_be_bytes());
        info.extend_from_slice(&h.to_be_bytes());
        info.extend_from_slice(&0u32.to_be_bytes()); // x resolution unknown
        info.extend_from_slice(&0u32.to_be_bytes());
        info.push(0); // flags: default pixel white, OR combination
        info.extend_from_slice(&0u16.to_be_bytes()); // no striping

        let mut encoder = fax::encoder::Encoder::new(fax::VecWriter::new());
        for row in page.rows() {
            let pels = row.map(|p| {
                if p.0[0] < 128 {
                    fax::Color::Black
                } else {
                    fax::Color::White
                }
            });
            encoder.encode_line(pels, w as u16).unwrap();
        }
        let mmr = encoder.finish().unwrap().finish();
        let mut region = Vec::new();
        region.extend_from_slice(&w.to_be_bytes());
        region.extend_from_slice(&h.to_be_bytes());
        region.extend_from_slice(&0u32.to_be_bytes()); // x
        region.extend_from_slice(&0u32.to_be_bytes()); // y
        region.push(0); // combination operator OR
        region.push(1); // generic region flags: MMR
        region.extend_from_slice(&mmr);

        let mut out = segment(0, 48, 1, &info);
        out.extend(segment(1, 38, 1, &region));
        out.extend(segment(2, 49, 1, &[]));
        out
    }

    pub(crate) fn test_page() -> GrayImage {
        let mut page = GrayImage::from_pixel(75, 40, Luma([255]));
        for y in 5..30 {
            for x in (10..60).filter(|x| x % 7 < 3) {
                page.put_pixel(x, y, Luma([0]));
            }
        }
        page
    }

    #[test]
    fn mmr_generic_region_decodes_to_the_page() {
        let page = test_page();
        let got = decode(&mmr_stream(&page), None, 75, 40).unwrap();
        assert_eq!(got, page);
    }

    #[test]
    fn size_mismatch_and_garbage_are_errors() {
        let page = test_page();
        let stream = mmr_stream(&page);
        let err = decode(&stream, None, 80, 40).unwrap_err().to_string();
        assert!(err.contains("75x40"), "{err}");
        let err = decode(&[0xFF; 20], None, 75, 40).unwrap_err().to_string();
        assert!(err.contains("JBIG2"), "{err}");
        // A symbol dictionary segment too short to hold its own header.
        let globals = segment(0, 0, 0, &[0xFF; 3]);
        let err = decode(&stream, Some(&globals), 75, 40)
            .unwrap_err()
            .to_string();
        assert!(err.contains("JBIG2Globals"), "{err}");
    }

    #[test]
    fn oversized_pages_are_refused_before_decoding() {
        let big = GrayImage::from_pixel(8, 8, Luma([255]));
        let mut stream = mmr_stream(&big);
        // Page information width field (after the 11-byte segment header).
        stream[11..15].copy_from_slice(&20_000u32.to_be_bytes());
        let err = decode(&stream, None, 8, 8).unwrap_err();
        assert!(
            matches!(err, PageError::Dimensions { .. }),
            "{err}: {err:?}"
        );
    }
}
