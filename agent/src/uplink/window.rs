//! The send window: how many pages may be in flight, and draining the
//! acknowledgements that free it.

use super::*;

/// Progress of a long backlog, so whoever watches the desk sees it move.
#[derive(Default)]
pub(super) struct Drain {
    pub(super) total: Option<u64>,
    pub(super) sent: u64,
    /// When this drain began: the pace so far gives the time left.
    started: Option<Instant>,
}

impl Drain {
    const EVERY: u64 = 25;

    pub(super) async fn pages_sent(&mut self, uplink: &Uplink, pages: u64) -> anyhow::Result<()> {
        let before = self.sent;
        self.sent += pages;
        let started = *self.started.get_or_insert_with(Instant::now);
        let crossed = before / Self::EVERY != self.sent / Self::EVERY;
        if self.total.is_none() || crossed {
            let waiting = uplink.blocking(|q| Ok(q.waiting_pages()?)).await?;
            // Pages scanned meanwhile join the backlog being drained.
            let total = (waiting + self.sent).max(self.total.unwrap_or(0));
            self.total = Some(total);
            if total >= BACKLOG_PROGRESS {
                tracing::info!(
                    "backlog: {} of {} pages sent, {} waiting",
                    self.sent,
                    total,
                    waiting
                );
                let eta_secs = (self.sent > 0)
                    .then(|| started.elapsed().as_secs_f64() * waiting as f64 / self.sent as f64)
                    .map(|secs| secs.ceil() as u64);
                let progress = serde_json::json!({
                    "sent": self.sent,
                    "total": total,
                    "waiting": waiting,
                    "eta_secs": eta_secs,
                    "at": chrono::Utc::now().to_rfc3339(),
                })
                .to_string();
                uplink
                    .blocking(move |q| Ok(q.set_meta(BACKLOG_KEY, &progress)?))
                    .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn finished(&mut self, uplink: &Uplink) -> anyhow::Result<()> {
        if self.total.is_some_and(|t| t >= BACKLOG_PROGRESS) {
            tracing::info!("backlog drained: {} pages sent", self.sent);
        }
        if self.total.is_some() {
            uplink.blocking(|q| Ok(q.delete_meta(BACKLOG_KEY)?)).await?;
        }
        *self = Drain::default();
        Ok(())
    }
}

/// What a fatal server error means for the desk.
pub(super) fn fatal(e: ProtocolError) -> anyhow::Error {
    let text = format!("server refused: {} ({})", e.message, e.code);
    if e.code == "revoked" {
        anyhow::Error::new(Refused(text))
    } else {
        anyhow::anyhow!(text)
    }
}

/// The pages offered on this connection and not yet answered, in scan order.
pub(super) struct Window {
    pub(super) pages: VecDeque<QueuedPage>,
    pub(super) bytes: u64,
    /// The scan position of the last page offered.
    pub(super) last_seq: i64,
    /// Pages read from the queue, in scan order, not yet offered for lack of room.
    pub(super) ahead: VecDeque<QueuedPage>,
    pub(super) max_pages: usize,
    pub(super) max_bytes: u64,
}

impl Window {
    pub(super) fn new(welcome: &Welcome) -> Window {
        // A version 1 server sends no window: one page at a time.
        let max_pages = welcome.window_pages.clamp(1, WINDOW_PAGES) as usize;
        let max_bytes = match welcome.window_bytes {
            0 => 1,
            n => n.min(WINDOW_BYTES),
        };
        Window {
            pages: VecDeque::new(),
            bytes: 0,
            last_seq: 0,
            ahead: VecDeque::new(),
            max_pages,
            max_bytes,
        }
    }

    /// Room for `page`; a page larger than the whole window goes alone.
    pub(super) fn fits(&self, page: &QueuedPage) -> bool {
        self.pages.is_empty()
            || (self.pages.len() < self.max_pages && self.bytes + page.size <= self.max_bytes)
    }

    /// How many more pages could go out now, were they small enough.
    pub(super) fn room(&self) -> usize {
        self.max_pages.saturating_sub(self.pages.len()).max(1)
    }

    /// Where the next read of the queue starts: after every page already read.
    pub(super) fn read_after(&self) -> i64 {
        self.ahead.back().map_or(self.last_seq, |p| p.seq)
    }

    pub(super) fn push(&mut self, page: QueuedPage) {
        self.last_seq = page.seq;
        self.bytes += page.size;
        self.pages.push_back(page);
    }

    pub(super) fn get(&self, id: Uuid) -> Option<&QueuedPage> {
        self.pages.iter().find(|p| p.capture_id == id)
    }

    pub(super) fn remove(&mut self, id: Uuid) -> Option<QueuedPage> {
        let at = self.pages.iter().position(|p| p.capture_id == id)?;
        let page = self.pages.remove(at)?;
        self.bytes -= page.size;
        Some(page)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}
