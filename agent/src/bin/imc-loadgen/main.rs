//! `imc-loadgen`: N simulated scan-desk agents streaming pages over the real
//! uplink protocol and M simulated ERP clients polling document status,
//! against one or several running `imc-server`s. Prints pages/s, latency
//! percentiles and errors, then checks through the API that every page the
//! server acknowledged is on its document; exits non-zero on any loss or
//! protocol error. See docs/OPERATIONS.md ("Load generator").
//!
//! It speaks only the public protocol and API (imc-shared types, the
//! agent's TLS trust), never server internals.

mod agent;
mod api;
mod cli;
mod erp;
mod report;
mod stats;
mod verify;

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("imc-loadgen: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("imc-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the load; `Ok(false)` when a page was lost or an error occurred.
async fn run(args: cli::Args) -> anyhow::Result<bool> {
    let stop = args.stop_rule()?;
    let trust = imc_agent::tls::Trust::from_args(args.ca.as_deref(), args.insecure)?;
    let http = trust.http_client()?;
    let mut apis = Vec::new();
    for server in &args.servers {
        let base = server.trim_end_matches('/').to_owned();
        trust.check_url(&base)?;
        apis.push(api::Api {
            http: http.clone(),
            base,
            token: args.admin_token.clone(),
        });
    }
    // A fresh id per run keeps doc numbers and page bytes distinct from earlier runs.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    for api in &apis {
        api.match_scheme(agent::DOC_TYPE).await?;
    }
    // Setup: every agent enrols before the clock starts, each with its own identity.
    let mut enrolments = JoinSet::new();
    for index in 0..args.agents {
        let api = apis[index % apis.len()].clone();
        let (site, name) = (args.site.clone(), format!("loadgen-{run_id}-{index}"));
        enrolments.spawn(async move {
            let enrolled = api
                .enroll(&site, &name)
                .await
                .with_context(|| format!("enrolling agent {index} at {}", api.base))?;
            anyhow::Ok((index, api, enrolled))
        });
    }
    let mut enrolled = Vec::new();
    while let Some(done) = enrolments.join_next().await {
        enrolled.push(done??);
    }
    enrolled.sort_by_key(|(index, _, _)| *index);

    let live = Arc::new(stats::Live::default());
    let documents = Arc::new(RwLock::new(Vec::new()));
    let total = stop.pages_per_agent.filter(|_| stop.duration.is_none());
    let bar = report::progress(
        Arc::clone(&live),
        total.map(|k| k * args.agents as u64),
        args.json,
    );
    let started = Instant::now();
    let mut agents = JoinSet::new();
    for (index, api, identity) in enrolled {
        let agent = agent::Agent {
            index,
            api,
            trust: trust.clone(),
            token: identity.token,
            site: identity.site,
            run_id: run_id.clone(),
            page_size: args.page_size,
            pages_per_packet: args.pages_per_packet,
            stop,
            started,
            documents: Arc::clone(&documents),
            live: Arc::clone(&live),
        };
        agents.spawn(agent.run());
    }
    let erp_stop = CancellationToken::new();
    let mut erps = JoinSet::new();
    for index in 0..args.erp_clients {
        let client = erp::ErpClient {
            index,
            api: apis[index % apis.len()].clone(),
            documents: Arc::clone(&documents),
            live: Arc::clone(&live),
        };
        erps.spawn(client.run(erp_stop.clone()));
    }

    let mut packets = Vec::new();
    let mut pages_offered = 0;
    let mut page_latency = stats::Latencies::default();
    while let Some(done) = agents.join_next().await {
        match done.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(result) => {
                packets.extend(result.packets);
                pages_offered += result.pages_offered;
                page_latency.merge(result.page_latency);
            }
            Err(e) => live.protocol_error(format!("{e:#}")),
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(0.001);
    erp_stop.cancel();
    let mut status_latency = stats::Latencies::default();
    while let Some(done) = erps.join_next().await {
        status_latency.merge(done.context("an ERP client panicked")?);
    }
    bar.finish_and_clear();

    let verified = verify::verify(&apis[0], &packets).await?;
    let pages_stored = stats::Live::get(&live.pages_stored);
    let status_calls = stats::Live::get(&live.status_calls);
    let protocol_errors = stats::Live::get(&live.protocol_errors);
    let status_errors = stats::Live::get(&live.status_errors);
    let summary = report::Summary {
        servers: apis.iter().map(|a| a.base.clone()).collect(),
        agents: args.agents,
        erp_clients: args.erp_clients,
        page_size: args.page_size,
        elapsed_secs: elapsed,
        pages_offered,
        pages_stored,
        pages_per_sec: pages_stored as f64 / elapsed,
        mib_per_sec: stats::Live::get(&live.bytes_stored) as f64 / elapsed / (1024.0 * 1024.0),
        page_latency_ms: page_latency.summary(),
        status_calls,
        status_per_sec: status_calls as f64 / elapsed,
        status_latency_ms: status_latency.summary(),
        status_throttled: stats::Live::get(&live.status_throttled),
        status_errors,
        protocol_errors,
        ok: verified.pages_lost == 0
            && verified.packets_unmatched == 0
            && protocol_errors == 0
            && status_errors == 0
            && pages_stored == pages_offered,
        verify: verified,
        error_samples: live.samples(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        summary.print_human();
    }
    Ok(summary.ok)
}
