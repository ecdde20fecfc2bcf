//! Cover sheet (封面) rendering.
//!
//! A clerk prints one of these and lays it on top of a paper packet before it
//! goes through the scanner. The scan pipeline finds the cover by its code
//! (Code 128 for line scanners and the decoder, QR as a second, more damage-
//! tolerant copy) and splits/matches the packet on it; the printed fields are
//! for the humans who sort and check packets. The page is an A4 raster at
//! 300 dpi so that barcode modules land on whole printer dots, and it is
//! offered as PNG (with its dpi recorded) or as a one-image PDF whose page is
//! exactly A4, so "fit to page" in a print dialog cannot rescale it.

mod barcode;
#[cfg(test)]
mod tests;
mod text;

use std::path::Path;

use ab_glyph::FontVec;
use image::{GrayImage, Luma};

/// A4 at 300 dpi.
const PAGE_W: u32 = 2480;
const PAGE_H: u32 = 3508;
const DPI: f32 = 300.0;
/// 12.7 mm; inside every office printer's unprintable border.
const MARGIN: u32 = 150;
/// ≥ 4 px so a module is still ≥ 2 px in a 150 dpi scan; 8 px when it fits.
const BAR_MODULE_MIN: u32 = 4;
const BAR_MODULE_MAX: u32 = 8;
const BAR_QUIET_MODULES: u32 = 10;
const QR_QUIET_MODULES: u32 = 4;
const QR_MODULE_MIN: u32 = 8;
/// Aim for a QR of about 32 mm including its quiet zone.
const QR_TARGET_PX: u32 = 380;
const INK: u8 = 0;
const LABEL_INK: u8 = 70;

fn mm(v: f32) -> u32 {
    (v * DPI / 25.4).round() as u32
}

/// What goes on a cover sheet. `cover_code` is what the Code 128 carries;
/// the QR carries it framed with the attachment count (`imc_shared::cover_qr`).
pub struct CoverFields<'a> {
    pub cover_code: &'a str,
    pub source_system: &'a str,
    pub doc_no: &'a str,
    pub doc_type: &'a str,
    pub org: &'a str,
    pub title: Option<&'a str>,
    pub amount: Option<&'a str>,
    pub submitter: Option<&'a str>,
    /// The declared attachment count (附件张数), printed and in the QR.
    pub attachment_count: Option<u32>,
    /// What the QR holds: the signed payload of code and count
    /// ([`crate::cover_keys::Loaded::qr_text`]).
    pub qr_text: &'a str,
    pub created_at: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum CoverError {
    /// The font file given explicitly could not be read or parsed.
    #[error("cover font: {0}")]
    Font(String),
    /// The code could not be encoded, or is too long to fit the page.
    #[error("cover barcode: {0}")]
    Barcode(String),
    /// Writing PNG or PDF failed.
    #[error("cover encoding: {0}")]
    Encode(String),
}

/// Loaded fonts, found once at start-up and shared (Send + Sync).
pub struct CoverRenderer {
    /// None when the machine has no usable font: barcodes still render.
    font: Option<FontVec>,
    cjk: bool,
}

impl CoverRenderer {
    /// Finds a font with CJK coverage among system fonts; see `text::pick_font`
    /// for the order. Never fails: a cover with blank text still routes scans.
    pub fn from_system_fonts() -> Self {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        Self::from_db(&db, &[])
    }

    /// Like [`Self::from_system_fonts`], but faces in `path` (TTF/OTF/TTC) are
    /// tried first; errors if the file cannot be read or holds no font.
    pub fn with_font_file(path: &Path) -> Result<Self, CoverError> {
        let mut db = fontdb::Database::new();
        db.load_font_file(path)
            .map_err(|e| CoverError::Font(format!("{}: {e}", path.display())))?;
        let first: Vec<_> = db.faces().map(|f| f.id).collect();
        if first.is_empty() {
            return Err(CoverError::Font(format!(
                "{}: no font faces",
                path.display()
            )));
        }
        db.load_system_fonts();
        Ok(Self::from_db(&db, &first))
    }

    fn from_db(db: &fontdb::Database, first: &[fontdb::ID]) -> Self {
        let picked = text::pick_font(db, first);
        match &picked {
            None => tracing::warn!("no usable font found; cover sheets will carry barcodes only"),
            Some((_, false)) => tracing::warn!(
                "no font with Chinese glyphs found (install fonts-wqy-microhei); \
                 Chinese text on cover sheets will be blank"
            ),
            Some((_, true)) => {}
        }
        let cjk = picked.as_ref().is_some_and(|(_, cjk)| *cjk);
        Self {
            font: picked.map(|(f, _)| f),
            cjk,
        }
    }

    /// Whether Chinese labels and values will actually show on the page.
    pub fn has_cjk_font(&self) -> bool {
        self.cjk
    }

    /// The page as an 8-bit greyscale A4 raster at 300 dpi (2480 x 3508).
    pub fn render_gray(&self, fields: &CoverFields) -> Result<GrayImage, CoverError> {
        let mut img = GrayImage::from_pixel(PAGE_W, PAGE_H, Luma([255]));
        let font = self.font.as_ref();
        let right = (PAGE_W - MARGIN) as f32;

        if let Some(f) = font {
            text::draw_text(
                &mut img,
                f,
                72.0,
                MARGIN as f32,
                (MARGIN + 60) as f32,
                "IMC 影像封面 / Cover sheet",
                INK,
            );
        }

        // QR in the top-right corner, its quiet zone inside the margin box.
        // The desk reads the count from the QR without asking the server; the
        // Code 128 stays the bare code, as ERP-printed covers have it.
        let qr = barcode::qr_matrix(fields.qr_text)?;
        let qr_total_modules = qr.width() + 2 * QR_QUIET_MODULES;
        let qm = (QR_TARGET_PX / qr_total_modules).max(QR_MODULE_MIN);
        let qr_size = qr_total_modules * qm;
        let qr_x = PAGE_W - MARGIN - qr_size;
        let block_y = MARGIN + 120;
        let qr_y = block_y;
        barcode::paint_matrix(
            &mut img,
            &qr,
            qr_x + QR_QUIET_MODULES * qm,
            qr_y + QR_QUIET_MODULES * qm,
            qm,
        );

        // Code 128 to the left of it, at the widest whole-pixel module that fits.
        let bars = barcode::code128_modules(fields.cover_code)?;
        let bar_modules = bars.len() as u32 + 2 * BAR_QUIET_MODULES;
        let avail = qr_x.saturating_sub(MARGIN + 40);
        let bm = (avail / bar_modules).min(BAR_MODULE_MAX);
        if bm < BAR_MODULE_MIN {
            return Err(CoverError::Barcode(format!(
                "cover code {:?} is too long for a {BAR_MODULE_MIN} px Code 128 module",
                fields.cover_code
            )));
        }
        // Top of the bars level with the top of the QR symbol itself.
        let bar_y = qr_y + QR_QUIET_MODULES * qm;
        let bar_h = mm(15.0);
        let bar_x = MARGIN + BAR_QUIET_MODULES * bm;
        barcode::paint_bars(&mut img, &bars, bar_x, bar_y, bm, bar_h);

        let mut y = (qr_y + qr_size).max(bar_y + bar_h + 90);
        if let Some(f) = font {
            let code_px = 60.0;
            let w = text::text_width(f, code_px, fields.cover_code);
            let center = bar_x as f32 + (bars.len() as u32 * bm) as f32 / 2.0;
            let baseline = (bar_y + bar_h + 75) as f32;
            text::draw_text(
                &mut img,
                f,
                code_px,
                center - w / 2.0,
                baseline,
                fields.cover_code,
                INK,
            );
        }
        y += 40;
        fill_rect(&mut img, MARGIN, y, PAGE_W - 2 * MARGIN, 4, INK);

        let Some(f) = font else {
            return Ok(img);
        };
        let attachments = fields
            .attachment_count
            .map(|n| format!("附件 {n} 张 / {n} attachments"));
        let rows: [(&str, Option<&str>); 9] = [
            ("单据编号 Doc no", Some(fields.doc_no)),
            ("来源系统 Source system", Some(fields.source_system)),
            ("单据类型 Doc type", Some(fields.doc_type)),
            ("组织 Org", Some(fields.org)),
            ("标题 Title", fields.title),
            ("金额 Amount", fields.amount),
            ("提交人 Submitter", fields.submitter),
            ("附件张数 Attachments", attachments.as_deref()),
            ("创建时间 Created", Some(fields.created_at)),
        ];
        let px = 58.0;
        let label_w = rows
            .iter()
            .map(|(l, _)| text::text_width(f, px, l))
            .fold(0.0, f32::max);
        let value_x = MARGIN as f32 + label_w + 60.0;
        let mut baseline = (y + 120) as f32;
        for (label, value) in rows {
            let Some(value) = value else { continue };
            text::draw_text(&mut img, f, px, MARGIN as f32, baseline, label, LABEL_INK);
            let shown = text::fit(f, px, value, right - value_x);
            text::draw_text(&mut img, f, px, value_x, baseline, &shown, INK);
            baseline += 110.0;
        }

        let footer = "Place this sheet on top of the documents / 请将此封面放在单据最上方";
        let fpx = 46.0;
        let shown = text::fit(f, fpx, footer, right - MARGIN as f32);
        let fw = text::text_width(f, fpx, &shown);
        let fy = PAGE_H - MARGIN;
        fill_rect(&mut img, MARGIN, fy - 90, PAGE_W - 2 * MARGIN, 3, INK);
        text::draw_text(
            &mut img,
            f,
            fpx,
            (PAGE_W as f32 - fw) / 2.0,
            fy as f32,
            &shown,
            INK,
        );
        Ok(img)
    }

    /// PNG bytes, with a pHYs chunk saying 300 dpi (11811 px/m).
    pub fn render_png(&self, fields: &CoverFields) -> Result<Vec<u8>, CoverError> {
        let img = self.render_gray(fields)?;
        let mut png = Vec::new();
        img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut png))
            .map_err(|e| CoverError::Encode(format!("png: {e}")))?;
        insert_phys(png)
    }

    /// A one-page A4 PDF whose page is the raster as a DeviceGray image XObject.
    pub fn render_pdf(&self, fields: &CoverFields) -> Result<Vec<u8>, CoverError> {
        use lopdf::{Document, Object, Stream, dictionary};
        let img = self.render_gray(fields)?;
        let (w, h) = img.dimensions();
        let err = |e: lopdf::Error| CoverError::Encode(format!("pdf: {e}"));

        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let mut image = Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => i64::from(w),
                "Height" => i64::from(h),
                "ColorSpace" => "DeviceGray",
                "BitsPerComponent" => 8,
            },
            img.into_raw(),
        );
        image.compress().map_err(err)?; // FlateDecode
        let image_id = doc.add_object(image);
        // 595.28 x 841.89 pt is A4; scaling the unit square to it maps the
        // 2480 x 3508 raster to exactly 300 dpi.
        let content = b"q 595.28 0 0 841.89 0 0 cm /Im0 Do Q\n".to_vec();
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.28_f32.into(), 841.89_f32.into()],
            "Contents" => content_id,
            "Resources" => dictionary! { "XObject" => dictionary! { "Im0" => image_id } },
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => vec![page_id.into()],
                "Count" => 1,
            }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        let mut out = Vec::new();
        doc.save_to(&mut out)
            .map_err(|e| CoverError::Encode(format!("pdf: {e}")))?;
        Ok(out)
    }
}

/// Fills a rectangle, clipped to the image, row slice by row slice.
fn fill_rect(img: &mut GrayImage, x: u32, y: u32, w: u32, h: u32, v: u8) {
    let (iw, ih) = img.dimensions();
    let (x0, x1) = (x.min(iw) as usize, x.saturating_add(w).min(iw) as usize);
    let stride = iw as usize;
    let buf: &mut [u8] = img;
    for row in y.min(ih)..y.saturating_add(h).min(ih) {
        let start = row as usize * stride;
        buf[start + x0..start + x1].fill(v);
    }
}

/// Splices a pHYs chunk (300 dpi) right after IHDR: image's PNG encoder has
/// no way to set it, and without it viewers and print dialogs assume 72 or
/// 96 dpi and print the cover several pages wide.
fn insert_phys(png: Vec<u8>) -> Result<Vec<u8>, CoverError> {
    // 8-byte signature, then IHDR: length(4) type(4) data(13) crc(4).
    const IHDR_END: usize = 8 + 4 + 4 + 13 + 4;
    if png.get(12..16) != Some(b"IHDR".as_slice()) || png.len() < IHDR_END {
        return Err(CoverError::Encode("png: unexpected layout, no IHDR".into()));
    }
    let ppm = (DPI / 0.0254).round() as u32; // 11811 px/m
    let mut chunk = Vec::with_capacity(21);
    chunk.extend_from_slice(&9u32.to_be_bytes());
    chunk.extend_from_slice(b"pHYs");
    chunk.extend_from_slice(&ppm.to_be_bytes());
    chunk.extend_from_slice(&ppm.to_be_bytes());
    chunk.push(1); // unit: metre
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    let mut out = Vec::with_capacity(png.len() + chunk.len());
    out.extend_from_slice(&png[..IHDR_END]);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[IHDR_END..]);
    Ok(out)
}

/// CRC-32 (ISO-HDLC) as PNG uses it; bitwise is plenty for a 13-byte chunk.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
