//! Command-line options of `imc-loadgen`.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Simulated scan-desk agents and ERP clients against running IMC servers.
#[derive(Debug, Parser)]
#[command(name = "imc-loadgen", version)]
pub struct Args {
    /// Server base URL; repeat to spread agents and ERP clients round-robin over replicas.
    #[arg(long = "server", required = true)]
    pub servers: Vec<String>,
    /// An admin API token (creates documents, enrolment codes, reads status and pages).
    #[arg(long, env = "IMC_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Simulated agents, each enrolled with its own identity.
    #[arg(long, default_value_t = 10)]
    pub agents: usize,
    /// Pages each agent sends; with --duration alone there is no page limit.
    #[arg(long)]
    pub pages_per_agent: Option<u64>,
    /// Pages per packet; each packet is one document with its own cover code.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pages_per_packet: u32,
    /// Bytes per generated page.
    #[arg(long, default_value_t = 300 * 1024, value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub page_size: u64,
    /// Simulated ERP clients calling the status endpoint in a loop.
    #[arg(long, default_value_t = 4)]
    pub erp_clients: usize,
    /// Stop starting new packets after this many seconds (packets in hand are finished).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Site the agents enrol into.
    #[arg(long, default_value = "loadgen")]
    pub site: String,
    /// Trust this CA (PEM) instead of the system roots, like `imc-agent enroll --ca`.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Allow plain http:// and ws:// (lab use).
    #[arg(long)]
    pub insecure: bool,
    /// Print the summary as JSON on stdout (no progress line).
    #[arg(long)]
    pub json: bool,
}

/// When the agents stop starting packets.
#[derive(Debug, Clone, Copy)]
pub struct StopRule {
    pub pages_per_agent: Option<u64>,
    pub duration: Option<Duration>,
}

impl Args {
    pub fn stop_rule(&self) -> anyhow::Result<StopRule> {
        let duration = match self.duration {
            Some(secs) if !(secs > 0.0 && secs.is_finite()) => {
                anyhow::bail!("--duration must be a positive number of seconds, not {secs}")
            }
            Some(secs) => Some(Duration::from_secs_f64(secs)),
            None => None,
        };
        // Neither given: the page count decides, with the default of 100.
        let pages_per_agent = match (self.pages_per_agent, duration) {
            (None, None) => Some(100),
            (pages, _) => pages,
        };
        if self.agents == 0 {
            anyhow::bail!("--agents must be at least 1");
        }
        Ok(StopRule {
            pages_per_agent,
            duration,
        })
    }
}
