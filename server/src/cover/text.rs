//! Font discovery (fontdb) and glyph rasterisation (ab_glyph).
//!
//! One face is used for everything: a CJK face also carries Latin glyphs, and
//! a single face keeps the baseline and metrics consistent across a row.

use std::borrow::Cow;

use ab_glyph::{Font, FontRef, FontVec, GlyphId, PxScale, ScaleFont, point};
use fontdb::{Database, ID, Style};
use image::GrayImage;

/// Families known to cover Simplified Chinese, best first.
const PREFERRED_CJK: &[&str] = &[
    "WenQuanYi Micro Hei",
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Microsoft YaHei",
    "SimSun",
    "PingFang SC",
];
/// A common hanzi used to probe a face for Chinese coverage.
const CJK_PROBE: char = '单';

fn has_glyph(db: &Database, id: ID, c: char) -> bool {
    db.with_face_data(id, |data, index| {
        FontRef::try_from_slice_and_index(data, index).is_ok_and(|f| f.glyph_id(c).0 != 0)
    })
    .unwrap_or(false)
}

/// The regular-weight upright face among `ids` that has `c`, if any.
fn best_with(db: &Database, ids: impl Iterator<Item = ID>, c: char) -> Option<ID> {
    ids.filter_map(|id| db.face(id).map(|f| (id, f)))
        .filter(|(id, _)| has_glyph(db, *id, c))
        .min_by_key(|(_, f)| {
            let slant = if f.style == Style::Normal { 0 } else { 1000 };
            (i32::from(f.weight.0) - 400).abs() + slant
        })
        .map(|(id, _)| id)
}

fn family_faces<'a>(db: &'a Database, family: &'a str) -> impl Iterator<Item = ID> + 'a {
    db.faces()
        .filter(move |f| {
            f.families
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(family))
        })
        .map(|f| f.id)
}

/// Picks a face: CJK in `first` (an explicit file), then preferred CJK
/// families, then any CJK face, then Latin in `first`, then any Latin face.
/// Returns the loaded face and whether it covers Chinese.
pub(super) fn pick_font(db: &Database, first: &[ID]) -> Option<(FontVec, bool)> {
    let all = || db.faces().map(|f| f.id);
    let cjk = best_with(db, first.iter().copied(), CJK_PROBE)
        .or_else(|| {
            PREFERRED_CJK
                .iter()
                .find_map(|fam| best_with(db, family_faces(db, fam), CJK_PROBE))
        })
        .or_else(|| best_with(db, all(), CJK_PROBE));
    let (id, is_cjk) = match cjk {
        Some(id) => (id, true),
        None => (
            best_with(db, first.iter().copied(), 'A').or_else(|| best_with(db, all(), 'A'))?,
            false,
        ),
    };
    if let Some(face) = db.face(id) {
        tracing::debug!(font = %face.post_script_name, cjk = is_cjk, "cover sheet font");
    }
    // Copy the winner out of the (possibly memory-mapped) source: the
    // renderer must own its bytes to be 'static, Send and Sync.
    let font = db
        .with_face_data(id, |data, index| {
            FontVec::try_from_vec_and_index(data.to_vec(), index).ok()
        })
        .flatten()?;
    Some((font, is_cjk))
}

/// Glyphs of `text` laid out on one line: (byte offset, glyph, pen x).
/// Glyphs the face lacks are dropped instead of drawn as tofu boxes.
fn layout(font: &FontVec, px: f32, text: &str) -> (Vec<(usize, GlyphId, f32)>, f32) {
    let sf = font.as_scaled(PxScale::from(px));
    let mut out = Vec::with_capacity(text.len());
    let mut pen = 0.0;
    let mut prev: Option<GlyphId> = None;
    for (i, c) in text.char_indices() {
        let id = sf.glyph_id(c);
        if id.0 == 0 {
            continue;
        }
        if let Some(p) = prev {
            pen += sf.kern(p, id);
        }
        out.push((i, id, pen));
        pen += sf.h_advance(id);
        prev = Some(id);
    }
    (out, pen)
}

pub(super) fn text_width(font: &FontVec, px: f32, text: &str) -> f32 {
    layout(font, px, text).1
}

/// `text`, cut at a character boundary and ended with an ellipsis if it is
/// wider than `max_w` px.
pub(super) fn fit<'t>(font: &FontVec, px: f32, text: &'t str, max_w: f32) -> Cow<'t, str> {
    let (glyphs, width) = layout(font, px, text);
    if width <= max_w {
        return Cow::Borrowed(text);
    }
    let ell = if font.glyph_id('…').0 != 0 {
        "…"
    } else {
        "..."
    };
    let room = max_w - text_width(font, px, ell);
    let sf = font.as_scaled(PxScale::from(px));
    // Keep every glyph whose right edge still fits; one linear pass.
    let cut = glyphs
        .iter()
        .take_while(|(_, id, x)| x + sf.h_advance(*id) <= room)
        .last()
        .and_then(|(i, _, _)| text[*i..].chars().next().map(|c| i + c.len_utf8()))
        .unwrap_or(0);
    Cow::Owned(format!("{}{ell}", text[..cut].trim_end()))
}

/// Draws `text` with its pen starting at (x, baseline), blending coverage
/// towards `ink` so anti-aliased edges stay smooth. Returns the advance width.
pub(super) fn draw_text(
    img: &mut GrayImage,
    font: &FontVec,
    px: f32,
    x: f32,
    baseline: f32,
    text: &str,
    ink: u8,
) -> f32 {
    let (glyphs, width) = layout(font, px, text);
    let scale = PxScale::from(px);
    let (w, h) = img.dimensions();
    for (_, id, gx) in glyphs {
        let glyph = id.with_scale_and_position(scale, point(x + gx, baseline));
        let Some(outline) = font.outline_glyph(glyph) else {
            continue; // whitespace has no outline
        };
        let b = outline.px_bounds();
        outline.draw(|ox, oy, cov| {
            let (px_x, px_y) = (b.min.x as i32 + ox as i32, b.min.y as i32 + oy as i32);
            if px_x < 0 || px_y < 0 || px_x as u32 >= w || px_y as u32 >= h {
                return;
            }
            let p = img.get_pixel_mut(px_x as u32, px_y as u32);
            let old = f32::from(p.0[0]);
            p.0[0] = (old - cov.clamp(0.0, 1.0) * (old - f32::from(ink))).round() as u8;
        });
    }
    width
}
