//! CCITT fax coding (T.4 "G3" one-dimensional, T.6 "G4"), the bitonal
//! compression of office scanners, decoded with the `fax` crate into a grey
//! page (black 0, white 255).
//!
//! The `tiff` crate decodes G4 strips itself; this is for PDF's
//! `CCITTFaxDecode` and for TIFF G3, which `tiff` does not read.

use super::t4::Framing;
use super::{PageError, check_dimensions};
use crate::guard::guarded;
use fax::Color;
use image::{GrayImage, Luma};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Coding {
    /// T.4 one-dimensional (Modified Huffman, with or without EOLs).
    G3,
    /// T.4 two-dimensional: each line 1-D or coded against the line above.
    G3TwoD,
    /// TIFF's Modified Huffman (compression 2): 1-D lines, no EOLs, byte-aligned.
    ModifiedHuffman,
    /// T.6.
    G4,
}

/// Decodes one bitonal image. Missing trailing lines are left white (some
/// encoders omit them); extra lines are ignored.
pub fn decode(
    data: &[u8],
    coding: Coding,
    width: u32,
    height: u32,
    format: &'static str,
) -> Result<GrayImage, PageError> {
    check_dimensions(width as u64, height as u64, 1)?;
    // MAX_SIDE is under u16::MAX, which is what the fax crate counts in.
    let w16 = u16::try_from(width).map_err(|_| PageError::Dimensions {
        width: width as u64,
        height: height as u64,
    })?;
    let mut page = GrayImage::from_pixel(width, height, Luma([255]));
    // A Cell: the fallback below asks how far the first decoder got.
    let y = std::cell::Cell::new(0u32);
    let mut put_line = |transitions: &[u16]| {
        if y.get() >= height {
            return;
        }
        for (x, color) in fax::decoder::pels(transitions, w16).enumerate() {
            if color == Color::Black {
                page.put_pixel(x as u32, y.get(), Luma([0]));
            }
        }
        y.set(y.get() + 1);
    };
    let finished = guarded(|| match coding {
        Coding::G4 => {
            let rows = u16::try_from(height).ok();
            fax::decoder::decode_g4(data.iter().copied(), w16, rows, &mut put_line)
        }
        Coding::G3 => match fax::decoder::decode_g3(data.iter().copied(), &mut put_line) {
            // No EOL where the `fax` crate wants one: lines written back to back.
            None if y.get() == 0 => {
                (super::t4::decode(data, w16, height, Framing::OneD, &mut put_line) > 0)
                    .then_some(())
            }
            other => other,
        },
        Coding::ModifiedHuffman => {
            (super::t4::decode(data, w16, height, Framing::ByteAligned, &mut put_line) > 0)
                .then_some(())
        }
        Coding::G3TwoD => {
            (super::t4::decode(data, w16, height, Framing::TwoD, &mut put_line) > 0).then_some(())
        }
    });
    match finished {
        // G3 data often ends without the six-EOL trailer; lines read so far stand.
        Some(Some(())) => Ok(page),
        Some(None) if coding != Coding::G4 && y.get() > 0 => Ok(page),
        Some(None) => Err(PageError::Decode {
            format,
            message: format!("CCITT {coding:?} data is corrupt"),
        }),
        None => Err(PageError::Decode {
            format,
            message: "the fax decoder failed on this page".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a grey page as G4, as a scanner would.
    pub fn encode_g4(page: &GrayImage) -> Vec<u8> {
        let mut encoder = fax::encoder::Encoder::new(fax::VecWriter::new());
        let width = page.width() as u16;
        for row in page.rows() {
            let pels = row.map(|p| {
                if p.0[0] < 128 {
                    Color::Black
                } else {
                    Color::White
                }
            });
            encoder.encode_line(pels, width).unwrap();
        }
        encoder.finish().unwrap().finish()
    }

    #[test]
    fn g4_round_trips() {
        let mut page = GrayImage::from_pixel(300, 200, Luma([255]));
        for y in 50..80 {
            for x in 20..250 {
                page.put_pixel(x, y, Luma([0]));
            }
        }
        let data = encode_g4(&page);
        let back = decode(&data, Coding::G4, 300, 200, "test").unwrap();
        assert_eq!(back, page);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let result = decode(&[0xFF; 64], Coding::G4, 300, 200, "test");
        // Either an error or some page; never a panic.
        let _ = result;
        assert!(decode(&[], Coding::G4, 0, 200, "test").is_err());
    }
}
