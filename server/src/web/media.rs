//! Page images for the desk: the original bytes, a browser-viewable
//! rendition (TIFF pages become JPEG), and thumbnails.
//!
//! Renditions are made once per blob and kept under `<data>/thumbs/`, named
//! by the blob's SHA-256, so they never go stale; decoding runs on the
//! blocking pool within the same limits as everywhere else, at most two at a
//! time. Every answer carries an ETag derived from the SHA-256 and may be
//! cached for good; byte ranges are served for the originals and renditions.

use super::error::{UiError, UiResult};
use super::extract::DeskPath;
use super::packets::packet_id;
use super::session::Staff;
use crate::blobs::is_sha256_hex;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::Cursor;
use std::sync::Arc;

const THUMB_BOX: u32 = 240;
const VIEW_BOX: u32 = 2400;
const MAX_SIDE: u32 = 12_000;
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    View,
    Thumb,
}

impl Kind {
    fn parse(text: &str) -> UiResult<Kind> {
        match text {
            "file" => Ok(Kind::File),
            "view" => Ok(Kind::View),
            "thumb" => Ok(Kind::Thumb),
            other => Err(UiError::NotFound(format!("image rendition {other}"))),
        }
    }
}

/// Types every browser shows in an `<img>` as they are.
fn browser_shows(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/jpeg" | "image/png" | "image/webp" | "image/gif" | "image/bmp"
    )
}

pub async fn image(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath((id, kind)): DeskPath<(i64, String)>,
    headers: HeaderMap,
) -> UiResult<Response> {
    let kind = Kind::parse(&kind)?;
    let image = state
        .store
        .image(id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("image {id}")))?;
    super::scope::require_document(&state, &staff, image.document_id)
        .await
        .map_err(|_| UiError::NotFound(format!("image {id}")))?;
    if let Some(purged) = &image.purged {
        return Ok(purged_placeholder(purged));
    }
    serve(&state, &image.sha256, &image.content_type, kind, &headers).await
}

pub async fn packet_page(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath((id, index, kind)): DeskPath<(String, u32, String)>,
    headers: HeaderMap,
) -> UiResult<Response> {
    let kind = Kind::parse(&kind)?;
    let what = format!("page {index} of packet {id}");
    if let Some(site) = staff.scope().site() {
        let packet = state.web.store.packet(packet_id(&id)?).await?;
        if packet.is_none_or(|p| p.site != site) {
            return Err(UiError::NotFound(what));
        }
    }
    let page = state
        .store
        .packet_page_blob(packet_id(&id)?, index)
        .await?
        .ok_or_else(|| UiError::NotFound(what))?;
    if let Some(purged) = &page.purged {
        return Ok(purged_placeholder(purged));
    }
    serve(&state, &page.sha256, &page.content_type, kind, &headers).await
}

async fn serve(
    state: &AppState,
    sha256: &str,
    content_type: &str,
    kind: Kind,
    headers: &HeaderMap,
) -> UiResult<Response> {
    if !is_sha256_hex(sha256) {
        return Err(UiError::Internal(anyhow::anyhow!(
            "stored image digest {sha256:?} is not SHA-256 hex"
        )));
    }
    let kind = match kind {
        Kind::View if browser_shows(content_type) => Kind::File,
        other => other,
    };
    let etag = match kind {
        Kind::File => format!("\"{sha256}\""),
        Kind::View => format!("\"{sha256}-view\""),
        Kind::Thumb => format!("\"{sha256}-thumb\""),
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok(with_cache(StatusCode::NOT_MODIFIED.into_response(), &etag));
    }
    let (bytes, content_type) = match kind {
        Kind::File => (state.blobs.get(sha256).await?, content_type.to_owned()),
        Kind::View | Kind::Thumb => match rendition(state, sha256, content_type, kind).await? {
            Some(bytes) => (bytes, "image/jpeg".to_owned()),
            None => return Ok(placeholder(content_type)),
        },
    };
    Ok(with_cache(
        ranged(bytes, &content_type, &etag, headers),
        &etag,
    ))
}

fn with_cache(mut response: Response, etag: &str) -> Response {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response
}

/// One byte range of `len` bytes, as `Range: bytes=...` asks; `Err` when it
/// cannot be satisfied; `None` for no range (or several: the whole is sent).
fn byte_range(header: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| ())?;
        if suffix == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let start: u64 = start.parse().map_err(|_| ())?;
        let end = if end.is_empty() {
            len.saturating_sub(1)
        } else {
            end.parse::<u64>()
                .map_err(|_| ())?
                .min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

fn ranged(bytes: Vec<u8>, content_type: &str, etag: &str, headers: &HeaderMap) -> Response {
    let len = bytes.len() as u64;
    let ct = [(header::CONTENT_TYPE, content_type.to_owned())];
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_ok);
    match range.map(|r| byte_range(r, len)) {
        None | Some(Ok(None)) => (ct, bytes).into_response(),
        Some(Ok(Some((start, end)))) => {
            let part = bytes[start as usize..=end as usize].to_vec();
            (
                StatusCode::PARTIAL_CONTENT,
                ct,
                [(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))],
                part,
            )
                .into_response()
        }
        Some(Err(())) => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response(),
    }
}

/// A page the browser cannot show and we cannot draw (a PDF uploaded in
/// basic mode, or bytes that do not decode): a labelled grey box.
/// 410 Gone with a picture saying when and why, so the viewer shows that
/// instead of a broken image (the page details say it in words too).
fn purged_placeholder(purged: &imc_shared::api::Purged) -> Response {
    let escape = |text: &str| -> String {
        text.chars()
            .filter(|c| !c.is_control())
            .map(|c| match c {
                '<' => "&lt;".to_owned(),
                '>' => "&gt;".to_owned(),
                '&' => "&amp;".to_owned(),
                '\'' => "&apos;".to_owned(),
                '"' => "&quot;".to_owned(),
                c => c.to_string(),
            })
            .collect()
    };
    let day: String = purged.at.chars().take(10).collect();
    let reason: String = purged.reason.chars().take(60).collect();
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='210' height='297' viewBox='0 0 210 297'>\
         <rect width='210' height='297' fill='#eee'/>\
         <text x='105' y='130' font-size='14' text-anchor='middle' fill='#555'>Image purged · 影像已清除</text>\
         <text x='105' y='152' font-size='12' text-anchor='middle' fill='#555'>{}</text>\
         <text x='105' y='172' font-size='7' text-anchor='middle' fill='#777'>{}</text></svg>",
        escape(&day),
        escape(&reason)
    );
    (
        StatusCode::GONE,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response()
}

fn placeholder(content_type: &str) -> Response {
    let label: String = content_type
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '/')
        .collect();
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='210' height='297' viewBox='0 0 210 297'>\
         <rect width='210' height='297' fill='#ddd'/><text x='105' y='150' font-size='16' \
         text-anchor='middle' fill='#555'>{label}</text></svg>"
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response()
}

/// The cached rendition, made now if it is not there; `None` when the
/// source cannot be decoded.
async fn rendition(
    state: &AppState,
    sha256: &str,
    content_type: &str,
    kind: Kind,
) -> UiResult<Option<Vec<u8>>> {
    if content_type == "application/pdf" {
        return Ok(None);
    }
    let renditions = Arc::clone(&state.web.renditions);
    let suffix = if kind == Kind::Thumb { "thumb" } else { "view" };
    let path = renditions.dir.join(format!("{sha256}-{suffix}.jpg"));
    if let Ok(bytes) = tokio::fs::read(&path).await {
        return Ok(Some(bytes));
    }
    let _permit = renditions
        .permits
        .acquire()
        .await
        .map_err(|e| anyhow::anyhow!("rendition permits: {e}"))?;
    // Another request may have made it while this one waited.
    if let Ok(bytes) = tokio::fs::read(&path).await {
        return Ok(Some(bytes));
    }
    let source = state.blobs.get(sha256).await?;
    let side = if kind == Kind::Thumb {
        THUMB_BOX
    } else {
        VIEW_BOX
    };
    let sha = sha256.to_owned();
    let dir = renditions.dir.clone();
    let made = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Vec<u8>>> {
        let Some(jpeg) = shrink(&source, side, &sha) else {
            return Ok(None);
        };
        std::fs::create_dir_all(&dir)?;
        let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
        std::fs::write(&tmp, &jpeg)?;
        std::fs::rename(&tmp, &path)?;
        Ok(Some(jpeg))
    })
    .await
    .map_err(|e| anyhow::anyhow!("rendition task for blob {sha256}: {e}"))?
    .map_err(|e| anyhow::anyhow!("caching a rendition of blob {sha256}: {e}"))?;
    Ok(made)
}

/// Decodes within limits and scales into a `side`-pixel box, as JPEG.
pub fn shrink(source: &[u8], side: u32, what: &str) -> Option<Vec<u8>> {
    let decoded = std::panic::catch_unwind(|| -> Result<image::DynamicImage, String> {
        let mut reader = image::ImageReader::new(Cursor::new(source))
            .with_guessed_format()
            .map_err(|e| e.to_string())?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        reader.limits(limits);
        reader.decode().map_err(|e| e.to_string())
    });
    let image = match decoded {
        Ok(Ok(image)) => image,
        Ok(Err(e)) => {
            tracing::warn!(blob = what, error = %e, "page does not decode for a rendition");
            return None;
        }
        Err(_) => {
            tracing::warn!(blob = what, "image decoder panicked on a page");
            return None;
        }
    };
    let scaled = if image.width() > side || image.height() > side {
        image.thumbnail(side, side)
    } else {
        image
    };
    let rgb = scaled.to_rgb8();
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82);
    match rgb.write_with_encoder(encoder) {
        Ok(()) => Some(out),
        Err(e) => {
            tracing::warn!(blob = what, error = %e, "encoding a rendition failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(byte_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(byte_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(byte_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(byte_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(byte_range("items=0-1", 100), Ok(None));
        assert_eq!(byte_range("bytes=100-", 100), Err(()));
        assert_eq!(byte_range("bytes=5-2", 100), Err(()));
        assert_eq!(byte_range("bytes=-0", 100), Err(()));
        assert_eq!(byte_range("bytes=x-2", 100), Err(()));
    }

    #[test]
    fn shrinks_into_the_box_and_refuses_garbage() {
        let big = image::GrayImage::from_pixel(1200, 1700, image::Luma([200u8]));
        let mut png = Vec::new();
        big.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let jpeg = shrink(&png, THUMB_BOX, "test").unwrap();
        let thumb = image::load_from_memory(&jpeg).unwrap();
        assert_eq!(thumb.height(), THUMB_BOX);
        assert!(thumb.width() < THUMB_BOX);
        assert!(shrink(b"not an image", THUMB_BOX, "test").is_none());
    }
}
