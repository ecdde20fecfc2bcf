//! From a settled file to pages committed in the queue, or to quarantine.
//!
//! Order of durability: each page's bytes are written to the spool and
//! fsynced first, then the file and its pages are committed in one queue
//! transaction. A crash before the commit leaves only orphan spool files,
//! which start-up removes; the source file is still in the inbox and is taken
//! again.
//!
//! Which failures are which (the ingest line in [`crate::scan_line`] acts on
//! it): an `Err` from [`Ingest::prepare`] or [`Ingest::commit`] is *passing*:
//! the spool or the disk is full, reading the file failed (a network share
//! dropped, a scanner or antivirus still holds it), writing the spool failed,
//! the queue database was busy. The file keeps its place in scan order and
//! is tried again; the files after it wait. A file that fails *for good*
//! (it does not decode, its format is unsupported, it is over the size
//! limit) is [`Prepared::Quarantine`]: moved aside with the reason, and the
//! packet goes on with the next file. A file that vanished or changed while
//! being read is [`Outcome::Skipped`]: the watcher looks at it again.

use crate::decode::{self, DecodeOptions};
use crate::fsutil;
use crate::pages::{self, PageError};
use crate::queue::{NewPage, Queue};
use crate::vat;
use crate::watch::Candidate;
use imc_shared::CoverPatterns;
use imc_shared::cover_keys::CoverKeys;
use imc_shared::cover_qr::{self, Judged};
use imc_shared::protocol::BarcodeInfo;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use uuid::Uuid;

const MAX_BARCODES_PER_PAGE: usize = 32;
/// Characters, so that the UTF-8 text stays under the server's 4096-byte limit.
const MAX_BARCODE_TEXT_CHARS: usize = 1000;

/// What ingest learned about one page; also what `imc-agent inspect` prints.
#[derive(Debug, Clone)]
pub struct PageReport {
    pub index: usize,
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    pub size: u64,
    /// The resolution the file declares, if it does.
    pub dpi: Option<pages::dpi::Dpi>,
    pub cover_code: Option<String>,
    /// The attachment count the cover's QR declares (附件张数).
    pub declared: Option<u32>,
    /// Why a count the cover's QR carried was not taken; the page is still a cover.
    pub count_problem: Option<String>,
    /// Why a page that looked like a cover is not one: its QR signature
    /// failed (starts with [`cover_qr::SIGNATURE_INVALID`]).
    pub cover_problem: Option<String>,
    pub barcodes: Vec<BarcodeInfo>,
    pub blank: bool,
    /// The first barcode that parses as a VAT invoice QR (never a cover).
    pub vat_invoice: Option<vat::VatInvoice>,
}

/// A page ready to spool: its delivered bytes and what was read from it. The
/// decoded pixels are dropped once read, so a long multi-page file holds only
/// one decoded page at a time.
pub struct Analyzed {
    pub bytes: Vec<u8>,
    pub report: PageReport,
}

/// Decodes a file into pages and reads their barcodes; pure, no side effects.
pub fn analyze(
    bytes: Vec<u8>,
    patterns: &CoverPatterns,
    keys: &CoverKeys,
    full_scan: bool,
) -> Result<Vec<Analyzed>, PageError> {
    let mut analyzed = Vec::new();
    analyze_each(bytes, patterns, keys, full_scan, |a| analyzed.push(a))?;
    Ok(analyzed)
}

/// Like [`analyze`], handing each page on as soon as it is read, so that a
/// long file never holds more than one page in memory.
pub fn analyze_each(
    bytes: Vec<u8>,
    patterns: &CoverPatterns,
    keys: &CoverKeys,
    full_scan: bool,
    mut each: impl FnMut(Analyzed),
) -> Result<usize, PageError> {
    let patterns = patterns.clone();
    let options = DecodeOptions {
        // A bare cover code (Code 128, ERP-printed QR) or an IMC cover QR payload.
        is_cover: Box::new(move |text: &str| {
            patterns.is_cover(text)
                || cover_qr::parse(text).is_some_and(|qr| patterns.is_cover(&qr.code))
        }),
        full_scan,
    };
    let mut index = 0;
    pages::extract_each(bytes, |page| {
        let found = decode::scan_page(&page.gray, &options);
        // Within the uplink's limits: a page is never refused for its metadata.
        let barcodes: Vec<BarcodeInfo> = found
            .barcodes
            .into_iter()
            .take(MAX_BARCODES_PER_PAGE)
            .map(|b| BarcodeInfo {
                format: b.symbology.as_str().to_owned(),
                text: b.text.chars().take(MAX_BARCODE_TEXT_CHARS).collect(),
                orientation: b.orientation,
            })
            .collect();
        let vat_invoice = vat::first_on_page(barcodes.iter().map(|b| b.text.as_str()));
        let read_code = found
            .cover_code
            .map(|text| cover_qr::parse(&text).map_or(text, |qr| qr.code));
        // The count and signature come from the QR naming this very cover.
        let judged = read_code.as_ref().and_then(|code| {
            barcodes
                .iter()
                .filter_map(|b| cover_qr::parse(&b.text))
                .find(|qr| &qr.code == code)
                .map(|qr| qr.judge(keys))
        });
        let cover = match (read_code, judged) {
            (
                Some(code),
                Some(Judged::Cover {
                    declared,
                    count_problem,
                }),
            ) => (Some(code), declared, count_problem, None),
            // A forged or altered cover makes no cover, not even by its Code 128.
            (Some(_), Some(Judged::Forged(why))) => (
                None,
                None,
                None,
                Some(format!("{}: {why}", cover_qr::SIGNATURE_INVALID)),
            ),
            (code, _) => (code, None, None, None),
        };
        let (cover_code, declared, count_problem, cover_problem) = cover;
        let report = PageReport {
            index,
            width: page.gray.width(),
            height: page.gray.height(),
            content_type: page.content_type,
            size: page.bytes.len() as u64,
            dpi: page.dpi,
            cover_code,
            declared,
            count_problem,
            cover_problem,
            barcodes,
            blank: pages::is_blank(&page.gray),
            vat_invoice,
        };
        index += 1;
        each(Analyzed {
            bytes: page.bytes,
            report,
        });
    })
}

pub struct Ingest {
    pub queue: Arc<Queue>,
    pub patterns: Arc<RwLock<CoverPatterns>>,
    pub cover_keys: Arc<RwLock<CoverKeys>>,
    pub full_scan: bool,
    pub room: crate::room::Room,
    pub quarantine_dir: Box<dyn Fn(&Path) -> PathBuf + Send + Sync>,
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Queued {
        pages: usize,
        /// The inbox's packet still open after this file, with its count so far.
        open_packet: Option<crate::queue::OpenPacket>,
    },
    AlreadyQueued,
    Quarantined {
        reason: String,
    },
    /// The file vanished or changed before it could be read; the watcher will see it again.
    Skipped,
}

/// A file read, analysed and spooled, waiting for its turn to commit.
pub enum Prepared {
    /// Nothing to commit (already queued, or gone).
    Settled(Outcome),
    Quarantine(String),
    Pages {
        file_sha: String,
        pages: Vec<NewPage>,
    },
}

impl Ingest {
    /// Blocking: run it on the blocking pool. Prepares and commits one file.
    pub fn file(&self, candidate: &Candidate) -> anyhow::Result<Outcome> {
        let prepared = self.prepare(candidate)?;
        self.commit(candidate, prepared)
    }

    /// The expensive part (read, decode, barcodes, spool writes), safe to run
    /// for several files at once: it commits nothing. Blocking.
    pub fn prepare(&self, candidate: &Candidate) -> anyhow::Result<Prepared> {
        let path = &candidate.key.path;
        let bytes = match read_bounded(path, pages::MAX_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Prepared::Settled(Outcome::Skipped));
            }
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                return Ok(Prepared::Quarantine(
                    PageError::TooLarge(candidate.key.size).to_string(),
                ));
            }
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        if bytes.len() as u64 != candidate.key.size {
            return Ok(Prepared::Settled(Outcome::Skipped));
        }
        let file_sha = hex::encode(Sha256::digest(&bytes));
        // After a restart every file still in the inbox comes again; the
        // content decides whether it is one already taken.
        if self.queue.knows(&candidate.key, &file_sha)? {
            return Ok(Prepared::Settled(Outcome::AlreadyQueued));
        }
        self.make_room()?;
        let patterns = self
            .patterns
            .read()
            .map_err(|_| anyhow::anyhow!("cover pattern lock poisoned"))?
            .clone();
        let keys = self
            .cover_keys
            .read()
            .map_err(|_| anyhow::anyhow!("cover key lock poisoned"))?
            .clone();
        let source_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Each page goes to the spool as soon as it is read.
        let (mut pages, mut spool_error) = (Vec::new(), None);
        let analyzed = analyze_each(bytes, &patterns, &keys, self.full_scan, |a| {
            if spool_error.is_some() {
                return;
            }
            let name = format!("{source_name}#{}", a.report.index + 1);
            match self.spool(&a, name) {
                Ok(page) => pages.push(page),
                Err(e) => {
                    spool_error = Some(e.context(format!("spooling a page of {}", path.display())))
                }
            }
        });
        if let Some(e) = spool_error {
            remove_spooled(&pages);
            return Err(e);
        }
        if let Err(e) = analyzed {
            remove_spooled(&pages);
            return Ok(Prepared::Quarantine(e.to_string()));
        }
        // A single-image file is delivered under its own name.
        if let [page] = pages.as_mut_slice() {
            page.source_name = source_name;
        }
        Ok(Prepared::Pages { file_sha, pages })
    }

    /// Fails (the file stays in the inbox and is tried again later) while the
    /// spool is full or the disk nearly so; the reason is kept for `status`.
    fn make_room(&self) -> anyhow::Result<()> {
        let spooled = self.queue.stats()?;
        let verdict = self
            .room
            .check(self.queue.spool_dir(), spooled.bytes + spooled.failed_bytes);
        let had_warning = self.queue.meta(crate::room::ROOM_KEY)?.is_some();
        match verdict {
            Ok(()) => {
                if had_warning {
                    self.queue.delete_meta(crate::room::ROOM_KEY)?;
                    tracing::info!("room again on the desk: taking new scans");
                }
                Ok(())
            }
            Err(why) => {
                let note = format!("{why} (since {})", chrono::Utc::now().to_rfc3339());
                if !had_warning {
                    self.queue.set_meta(crate::room::ROOM_KEY, &note)?;
                }
                anyhow::bail!(why)
            }
        }
    }

    /// Writes one page to the spool durably; the page record names the file.
    fn spool(&self, a: &Analyzed, source_name: String) -> anyhow::Result<NewPage> {
        let capture_id = Uuid::now_v7();
        let spool_path = self.queue.spool_dir().join(capture_id.to_string());
        fsutil::write_durably(&spool_path, &a.bytes)?;
        Ok(NewPage {
            capture_id,
            spool_path,
            sha256: hex::encode(Sha256::digest(&a.bytes)),
            size: a.bytes.len() as u64,
            content_type: a.report.content_type.to_owned(),
            source_name,
            cover_code: a.report.cover_code.clone(),
            declared: a.report.declared,
            count_note: a.report.count_problem.clone(),
            cover_problem: a.report.cover_problem.clone(),
            barcodes_json: serde_json::to_string(&a.report.barcodes)?,
            blank: a.report.blank,
        })
    }

    /// Commits a prepared file: call in scan order, one at a time. Blocking.
    pub fn commit(&self, candidate: &Candidate, prepared: Prepared) -> anyhow::Result<Outcome> {
        let path = &candidate.key.path;
        let (file_sha, pages) = match prepared {
            Prepared::Settled(outcome) => return Ok(outcome),
            Prepared::Quarantine(reason) => return self.quarantine(candidate, &reason),
            Prepared::Pages { file_sha, pages } => (file_sha, pages),
        };
        // A cover in this file closes the packet before it: see whether that one came up short.
        let closing = match pages
            .iter()
            .any(|p| p.cover_code.is_some() || p.cover_problem.is_some())
        {
            true => self.queue.open_packet(&candidate.watch_dir)?,
            false => None,
        };
        let queued = self
            .queue
            .enqueue(&candidate.watch_dir, &candidate.key, &file_sha, &pages);
        match queued {
            Ok(true) => {}
            Ok(false) => {
                remove_spooled(&pages);
                return Ok(Outcome::AlreadyQueued);
            }
            Err(e) => {
                remove_spooled(&pages);
                return Err(e.into());
            }
        }
        for page in pages.iter().filter(|p| p.cover_code.is_some()) {
            let cover = page.cover_code.as_deref().unwrap_or_default();
            match (&page.declared, &page.count_note) {
                (_, Some(why)) => tracing::warn!(
                    file = %path.display(), cover, "cover sheet read: new packet; {why}, so it is not checked"
                ),
                (Some(declared), None) => tracing::info!(
                    file = %path.display(), cover, declared, "cover sheet read: new packet"
                ),
                (None, None) => {
                    tracing::info!(file = %path.display(), cover, "cover sheet read: new packet")
                }
            }
        }
        for why in pages.iter().filter_map(|p| p.cover_problem.as_deref()) {
            tracing::error!(
                file = %path.display(),
                "COVER REFUSED: {why}; the pages after it go to no document (an unmatched packet) \
                 until the next cover: print the cover again from IMC"
            );
        }
        tracing::debug!(file = %path.display(), pages = pages.len(), "file queued");
        if let Some(closed) = &closing {
            tell_count(closed, true);
        }
        let open_packet = self.queue.open_packet(&candidate.watch_dir)?;
        if let Some(open) = &open_packet {
            tell_count(open, false);
        }
        Ok(Outcome::Queued {
            pages: pages.len(),
            open_packet,
        })
    }

    /// Moves the file aside with a note saying why; the agent carries on.
    fn quarantine(&self, candidate: &Candidate, reason: &str) -> anyhow::Result<Outcome> {
        let path = &candidate.key.path;
        let dir = (self.quarantine_dir)(&candidate.watch_dir);
        let moved = fsutil::move_into(path, &dir);
        let moved_to = match &moved {
            Ok(target) => {
                let mut note = target.clone().into_os_string();
                note.push(".reason.txt");
                if let Err(e) = std::fs::write(&note, format!("{reason}\n")) {
                    tracing::warn!(file = %target.display(), error = %e, "could not write the quarantine note");
                }
                Some(target.clone())
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "could not move the file to quarantine; leaving it");
                None
            }
        };
        self.queue.quarantine(
            &candidate.watch_dir,
            &candidate.key,
            reason,
            moved_to.as_deref(),
        )?;
        tracing::warn!(file = %path.display(), reason, "file quarantined");
        Ok(Outcome::Quarantined {
            reason: reason.to_owned(),
        })
    }
}

/// Tells the desk when a packet's pages run over the count its cover
/// declares, or, when it closes, fall short of it.
pub fn tell_count(packet: &crate::queue::OpenPacket, closing: bool) {
    let Some(declared) = packet.declared else {
        return;
    };
    let cover = packet.cover_code.as_deref().unwrap_or_default();
    let scanned = packet.scanned;
    if scanned > declared {
        tracing::warn!(
            cover,
            declared,
            scanned,
            "more pages than the cover declares: {} extra",
            scanned - declared
        );
    } else if closing && scanned < declared {
        tracing::warn!(
            cover,
            declared,
            scanned,
            "packet closed short of the count its cover declares: {} missing",
            declared - scanned
        );
    }
}

/// Spool files of pages that were not committed.
fn remove_spooled(pages: &[NewPage]) {
    for page in pages {
        let _ = std::fs::remove_file(&page.spool_path);
    }
}

fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            "file too large",
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::synth;
    use imc_shared::CoverCode;

    fn png(img: &image::GrayImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// A cover as IMC prints it: the bare code as Code 128, the payload as QR.
    fn imc_cover(code: &str, qr: &str) -> Vec<u8> {
        let mut img = synth::blank_page();
        synth::draw_code128(&mut img, code, 250, 260, 4, 160);
        synth::draw_qr(&mut img, qr, 1800, 150, 8);
        png(&img)
    }

    #[test]
    fn an_imc_cover_gives_its_code_and_the_count_its_qr_declares() {
        let code = CoverCode::issue(42).to_string();
        let pages = analyze(
            imc_cover(&code, &cover_qr::encode(&code, Some(3))),
            &CoverPatterns::default(),
            &CoverKeys::default(),
            false,
        )
        .unwrap();
        let report = &pages[0].report;
        assert_eq!(report.cover_code.as_deref(), Some(code.as_str()));
        assert_eq!(
            (report.declared, report.count_problem.as_deref()),
            (Some(3), None)
        );
    }

    #[test]
    fn a_count_that_is_not_a_number_is_ignored_and_the_page_stays_a_cover() {
        let code = CoverCode::issue(43).to_string();
        for bad in ["-1", "many", "99999999"] {
            let qr = format!("{}{code}|{bad}", cover_qr::PREFIX);
            let pages = analyze(
                imc_cover(&code, &qr),
                &CoverPatterns::default(),
                &CoverKeys::default(),
                false,
            )
            .unwrap();
            let report = &pages[0].report;
            assert_eq!(report.cover_code.as_deref(), Some(code.as_str()), "{bad}");
            assert_eq!(report.declared, None, "{bad}");
            assert!(report.count_problem.is_some(), "{bad}");
        }
    }

    #[test]
    fn an_erp_cover_with_the_bare_code_declares_nothing() {
        let code = CoverCode::issue(44).to_string();
        let pages = analyze(
            imc_cover(&code, &code),
            &CoverPatterns::default(),
            &CoverKeys::default(),
            false,
        )
        .unwrap();
        let report = &pages[0].report;
        assert_eq!(report.cover_code.as_deref(), Some(code.as_str()));
        assert_eq!(
            (report.declared, report.count_problem.as_deref()),
            (None, None)
        );
    }

    mod signed {
        use super::*;
        use base64::Engine;
        use imc_shared::cover_keys::{CoverKey, key_id};
        use ring::signature::{Ed25519KeyPair, KeyPair};

        fn server_key() -> Ed25519KeyPair {
            Ed25519KeyPair::from_seed_unchecked(&[5; 32]).unwrap()
        }

        fn desk_keys() -> CoverKeys {
            CoverKeys::new(&[CoverKey::new(server_key().public_key().as_ref())]).0
        }

        /// The QR as the server prints it.
        fn signed_qr(code: &str, declared: Option<u32>) -> String {
            let key = server_key();
            let message = cover_qr::signed_message(code, declared);
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(key.sign(message.as_bytes()));
            cover_qr::encode_signed(code, declared, &key_id(key.public_key().as_ref()), &sig)
        }

        fn read(code: &str, qr: &str) -> PageReport {
            let pages = analyze(
                imc_cover(code, qr),
                &CoverPatterns::default(),
                &desk_keys(),
                false,
            )
            .unwrap();
            pages[0].report.clone()
        }

        #[test]
        fn a_signed_cover_is_a_cover_with_its_count() {
            let code = CoverCode::issue(45).to_string();
            let report = read(&code, &signed_qr(&code, Some(2)));
            assert_eq!(report.cover_code.as_deref(), Some(code.as_str()));
            assert_eq!((report.declared, report.cover_problem), (Some(2), None));
        }

        #[test]
        fn a_cover_whose_count_was_altered_is_no_cover_and_says_why() {
            let code = CoverCode::issue(46).to_string();
            let altered = signed_qr(&code, Some(2)).replacen("|2|", "|9|", 1);
            let report = read(&code, &altered);
            assert_eq!(
                report.cover_code, None,
                "not a cover, not even by its Code 128"
            );
            let why = report.cover_problem.unwrap();
            assert!(why.starts_with("cover_signature_invalid: "), "{why}");
            assert!(why.contains(&code), "{why}");
        }

        #[test]
        fn a_code_128_alone_still_makes_a_cover() {
            let code = CoverCode::issue(47).to_string();
            let report = read(&code, &code);
            assert_eq!(report.cover_code.as_deref(), Some(code.as_str()));
            assert_eq!(report.cover_problem, None);
        }
    }
}
