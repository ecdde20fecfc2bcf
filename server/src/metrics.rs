//! Prometheus metrics (`GET /metrics`), through the `metrics` facade.
//!
//! Totals that the database already knows (pages, bytes, documents, webhook
//! backlog, what each agent last reported) are read from the store at scrape
//! time, so they are exact and survive restarts. Timings that only the process
//! sees (match latency) are recorded where they happen.

use crate::store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const MATCH_LATENCY: &str = "imc_match_latency_seconds";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; `None` if another one got there first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(MATCH_LATENCY.into()),
                    &buckets,
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            metrics::describe_histogram!(
                MATCH_LATENCY,
                metrics::Unit::Seconds,
                "From a packet's first page to its automatic match with a document"
            );
            Some(handle)
        })
        .as_ref()
}

/// Records a packet matched automatically; `first_page_at` is its RFC 3339 creation time.
pub fn packet_matched(first_page_at: &str) {
    if let Ok(created) = chrono::DateTime::parse_from_rfc3339(first_page_at) {
        let secs = (chrono::Utc::now() - created.to_utc()).num_milliseconds() as f64 / 1000.0;
        metrics::histogram!(MATCH_LATENCY).record(secs.max(0.0));
    }
}

/// Counts what an archive export wrote (bags and their bytes).
pub fn archive_written(bags: u64, bytes: u64) {
    metrics::counter!("imc_archive_bags_total").increment(bags);
    metrics::counter!("imc_archive_bytes_total").increment(bytes);
}

/// The exposition text: store totals, then what the recorder holds.
pub async fn render(store: &dyn Store) -> anyhow::Result<String> {
    let snap = store.ops_snapshot().await?;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    family(
        "imc_pages_received_total",
        "counter",
        "Pages stored from scan desks",
        vec![(String::new(), snap.pages as f64)],
    );
    family(
        "imc_page_bytes_received_total",
        "counter",
        "Bytes of pages stored from scan desks",
        vec![(String::new(), snap.page_bytes as f64)],
    );
    family(
        "imc_documents",
        "gauge",
        "Documents by status",
        snap.documents_by_status
            .iter()
            .map(|(s, n)| (labels(&[("status", s)]), *n as f64))
            .collect(),
    );
    family(
        "imc_packets",
        "gauge",
        "Packets by state",
        snap.packets_by_state
            .iter()
            .map(|(s, n)| (labels(&[("state", s)]), *n as f64))
            .collect(),
    );
    family(
        "imc_webhook_backlog",
        "gauge",
        "Webhook events not yet delivered",
        vec![(String::new(), snap.webhooks_pending as f64)],
    );
    family(
        "imc_webhook_oldest_pending_seconds",
        "gauge",
        "Age of the oldest undelivered webhook event",
        vec![(String::new(), snap.webhook_oldest_pending_secs)],
    );
    family(
        "imc_images_purged_total",
        "counter",
        "Images whose bytes retention purged",
        vec![(String::new(), snap.images_purged as f64)],
    );
    family(
        "imc_blob_deletions_pending",
        "gauge",
        "Blobs marked for deletion by retention, waiting for the grace period",
        vec![(String::new(), snap.blob_deletions_pending as f64)],
    );
    let per_agent = |value: fn(&crate::store::AgentOps) -> Option<f64>| {
        snap.agents
            .iter()
            .filter_map(|a| {
                value(a).map(|v| {
                    (
                        labels(&[("agent", &a.id), ("site", &a.site), ("name", &a.name)]),
                        v,
                    )
                })
            })
            .collect::<Vec<_>>()
    };
    family(
        "imc_agent_last_seen_timestamp_seconds",
        "gauge",
        "When each agent was last connected (Unix time)",
        per_agent(|a| a.last_seen),
    );
    family(
        "imc_agent_queue_pages",
        "gauge",
        "Pages waiting in each agent's queue, as it last reported",
        per_agent(|a| a.queue_pages.map(|n| n as f64)),
    );
    family(
        "imc_agent_queue_bytes",
        "gauge",
        "Bytes waiting in each agent's queue, as it last reported",
        per_agent(|a| a.queue_bytes.map(|n| n as f64)),
    );
    family(
        "imc_agent_quarantined_files",
        "gauge",
        "Files each agent quarantined, as it last reported",
        per_agent(|a| a.quarantined.map(|n| n as f64)),
    );
    if let Some(handle) = handle() {
        out.push_str(&handle.render());
    }
    Ok(out)
}

/// `{k="v",...}` with label values escaped per the exposition format.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect::<Vec<_>>()
        .join(",");
    format!("{{{inner}}}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            super::labels(&[("name", "desk \"7\"\\x")]),
            "{name=\"desk \\\"7\\\"\\\\x\"}"
        );
    }
}
