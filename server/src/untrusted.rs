//! Checks on files callers upload, before anything is stored: the type comes
//! from the bytes (never the name or Content-Type), and the file must decode
//! whole within the page limits. Decoding runs on the blocking pool, behind
//! `catch_unwind` (inside the decoders used), two at a time, so a flood of
//! hostile files cannot starve the async threads or exhaust memory.

use tokio::sync::Semaphore;

/// Decodes running at once.
static DECODES: Semaphore = Semaphore::const_new(2);

/// PDF object and xref streams are small; a huge one is a bomb.
const MAX_PDF_STREAM: usize = 64 * 1024 * 1024;

/// The type of an upload or a scanned page, from its first bytes; `None`
/// when it is none IMC keeps.
pub fn sniff_content_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        return Some("application/pdf");
    }
    match image::guess_format(bytes).ok()? {
        image::ImageFormat::Jpeg => Some("image/jpeg"),
        image::ImageFormat::Png => Some("image/png"),
        image::ImageFormat::Tiff => Some("image/tiff"),
        image::ImageFormat::Bmp => Some("image/bmp"),
        image::ImageFormat::WebP => Some("image/webp"),
        _ => None,
    }
}

/// Why an upload was refused, in words for the caller.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    Unreadable(String),
    #[error("the server is shutting down")]
    Closed,
}

/// Checks that `bytes` (already sniffed as `content_type`) is a whole,
/// readable file within the limits.
pub async fn check(bytes: Vec<u8>, content_type: &'static str) -> Result<(), UploadError> {
    let permit = DECODES.acquire().await.map_err(|_| UploadError::Closed)?;
    let checked = tokio::task::spawn_blocking(move || check_blocking(bytes, content_type))
        .await
        .map_err(|e| UploadError::Unreadable(format!("the file could not be checked: {e}")));
    drop(permit);
    checked?
}

fn check_blocking(bytes: Vec<u8>, content_type: &str) -> Result<(), UploadError> {
    if content_type == "application/pdf" {
        return check_pdf(&bytes);
    }
    // The agent's page splitter: decodes every page within the limits
    // (12,000 px a side, 512 MiB decoded) and refuses cut-off JPEGs.
    imc_pages::extract_each(bytes, |_| {})
        .map(|_| ())
        .map_err(|e| UploadError::Unreadable(format!("the image is damaged or too large: {e}")))
}

/// PDFs are checked for structure only: ERPs upload text PDFs (e-invoices)
/// that have no image to decode.
fn check_pdf(bytes: &[u8]) -> Result<(), UploadError> {
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(MAX_PDF_STREAM),
        ..Default::default()
    };
    let loaded =
        std::panic::catch_unwind(|| lopdf::Document::load_mem_with_options(bytes, options))
            .map_err(|_| UploadError::Unreadable("the PDF reader failed on this file".into()))?
            .map_err(|e| {
                UploadError::Unreadable(format!("the PDF is damaged or truncated: {e}"))
            })?;
    let pages = loaded.get_pages().len();
    if pages == 0 {
        return Err(UploadError::Unreadable("the PDF has no pages".into()));
    }
    if pages > imc_pages::MAX_PAGES_PER_FILE {
        return Err(UploadError::Unreadable(format!(
            "the PDF has {pages} pages, over the limit of {}",
            imc_pages::MAX_PAGES_PER_FILE
        )));
    }
    Ok(())
}
