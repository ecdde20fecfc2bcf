//! The run's summary: human text, or JSON for bench scripts, and the
//! progress line while it runs.

use crate::stats::{Live, Percentiles};
use crate::verify::Verified;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub servers: Vec<String>,
    pub agents: usize,
    pub erp_clients: usize,
    pub page_size: u64,
    pub elapsed_secs: f64,
    pub pages_offered: u64,
    pub pages_stored: u64,
    pub pages_per_sec: f64,
    pub mib_per_sec: f64,
    /// Offer sent to `stored` received, per page.
    pub page_latency_ms: Percentiles,
    pub status_calls: u64,
    pub status_per_sec: f64,
    pub status_latency_ms: Percentiles,
    /// 429 answers (the server's rate limit), waited out and not counted as errors.
    pub status_throttled: u64,
    pub status_errors: u64,
    pub protocol_errors: u64,
    pub verify: Verified,
    pub error_samples: Vec<String>,
    /// True when nothing was lost and no error occurred.
    pub ok: bool,
}

impl Summary {
    pub fn print_human(&self) {
        let p = &self.page_latency_ms;
        let s = &self.status_latency_ms;
        println!(
            "imc-loadgen: {} agents, {} ERP clients, {} server(s), pages of {} bytes, {:.1} s",
            self.agents,
            self.erp_clients,
            self.servers.len(),
            self.page_size,
            self.elapsed_secs
        );
        println!(
            "pages:  {} stored of {} offered, {:.1} pages/s, {:.1} MiB/s",
            self.pages_stored, self.pages_offered, self.pages_per_sec, self.mib_per_sec
        );
        println!(
            "        offer→stored ms p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            p.p50, p.p90, p.p99, p.max
        );
        println!(
            "status: {} calls, {:.0} calls/s, {} throttled (429), {} errors",
            self.status_calls, self.status_per_sec, self.status_throttled, self.status_errors
        );
        println!(
            "        ms p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            s.p50, s.p90, s.p99, s.max
        );
        println!(
            "verify: {} documents, {} pages on their documents, {} lost, {} packets unmatched",
            self.verify.documents,
            self.verify.pages_verified,
            self.verify.pages_lost,
            self.verify.packets_unmatched
        );
        println!("errors: {} protocol", self.protocol_errors);
        for line in self.error_samples.iter().chain(&self.verify.problems) {
            println!("  - {line}");
        }
        println!("{}", if self.ok { "OK" } else { "FAILED" });
    }
}

/// A progress line on stderr (hidden when stderr is no terminal or with --json).
pub fn progress(live: Arc<Live>, total_pages: Option<u64>, hidden: bool) -> ProgressBar {
    let bar = match total_pages {
        Some(total) if !hidden => ProgressBar::new(total),
        _ if hidden => ProgressBar::hidden(),
        _ => ProgressBar::new_spinner(),
    };
    let template = if total_pages.is_some() {
        "{elapsed_precise} [{bar:30}] {pos}/{len} pages {msg}"
    } else {
        "{elapsed_precise} {spinner} {pos} pages {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let ticker = bar.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        while !ticker.is_finished() {
            tick.tick().await;
            let pages = Live::get(&live.pages_stored);
            let secs = started.elapsed().as_secs_f64().max(0.001);
            ticker.set_position(pages);
            ticker.set_message(format!(
                "{:.0} pages/s | status {} ({:.0}/s) | errors {}",
                pages as f64 / secs,
                Live::get(&live.status_calls),
                Live::get(&live.status_calls) as f64 / secs,
                Live::get(&live.protocol_errors) + Live::get(&live.status_errors),
            ));
        }
    });
    bar
}
