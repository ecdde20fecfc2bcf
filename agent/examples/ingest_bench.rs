//! Whole-agent ingest throughput: from a file appearing in the inbox to its
//! page durably committed in the queue, through the real watcher, ingest and
//! SQLite queue (`imc_agent::run`, settle time 0). The pages are generated
//! here: 300 dpi grey A4 JPEGs with text, skew and noise, every tenth a cover.
//! In the same run, the baseline: the same files only decoded (JPEG to grey),
//! one at a time on one thread.
//!
//! `cargo run --release -p imc-agent --example ingest_bench -- [PAGES]`

#[path = "../src/decode/synth.rs"]
mod synth;

use imc_agent::config::AgentConfig;
use imc_agent::queue::Queue;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Distinct page images (the first a cover); the files cycle through them.
const DISTINCT: usize = 10;
const COVER_EVERY: usize = 10;
const JPEG_QUALITY: u8 = 75;
const NOISE: u8 = 2;

/// Paragraphs of body text with margins and gaps, like a letter or an invoice.
fn paragraphs(img: &mut image::GrayImage, rng: &mut synth::Rng, top: u32) {
    let mut y = top;
    while y < 3200 {
        let height = 300 + rng.below(300);
        let width = 1200 + rng.below(800);
        synth::draw_text(img, rng, 250, y, 250 + width, (y + height).min(3250));
        y += height + 150;
    }
}

fn scan_like(page: usize) -> image::GrayImage {
    let seed = page as u64 + 1;
    let mut rng = synth::Rng::new(seed);
    let mut img = synth::blank_page();
    if page.is_multiple_of(COVER_EVERY) {
        let code = imc_shared::CoverCode::issue(7_000_000 + page as u64).to_string();
        synth::draw_code128(&mut img, &code, 250, 260, 4, 160);
        synth::draw_qr(&mut img, &code, 1800, 150, 8);
        paragraphs(&mut img, &mut rng, 700);
    } else {
        paragraphs(&mut img, &mut rng, 250);
    }
    let skew = (page % 5) as f32 * 0.6 - 1.2;
    synth::add_noise(&synth::rotate_small(&img, skew), NOISE, seed)
}

fn encode_jpeg(img: &image::GrayImage) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
    img.write_with_encoder(encoder)?;
    Ok(bytes)
}

fn decode(file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file)?;
    let gray = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)?.into_luma8();
    std::hint::black_box(gray);
    Ok(())
}

/// Pages per second decoding every file once on `threads` threads.
fn decode_only(files: &[PathBuf], threads: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let share = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(share)
            .map(|part| scope.spawn(move || part.iter().try_for_each(|f| decode(f))))
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| anyhow::anyhow!("decode thread panicked"))?
        })
    })?;
    Ok(files.len() as f64 / started.elapsed().as_secs_f64())
}

/// Moves the staged files into the inbox and waits until the queue holds all
/// of their pages; pages per second from the first file appearing.
async fn agent_ingest(root: &Path, staged: &[PathBuf]) -> anyhow::Result<f64> {
    let inbox = root.join("inbox");
    let data = root.join("data");
    std::fs::create_dir_all(&inbox)?;
    // A server that is not there: the uplink retries quietly, pages stay queued.
    let mut config = AgentConfig::new(
        "http://127.0.0.1:9".into(),
        "bench".into(),
        "bench".into(),
        "token".into(),
    );
    config.watch = vec![inbox.clone()];
    config.data_dir = Some(data.clone());
    config.settle_ms = 0;
    config.seal_after_ms = 60_000;
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(imc_agent::run(config, shutdown.clone()));
    // Let the watcher start before the files come.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queue = Queue::open(&data)?;

    let started = Instant::now();
    for file in staged {
        let name = file
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("staged file without a name"))?;
        std::fs::rename(file, inbox.join(name))?;
    }
    let want = staged.len() as u64;
    let deadline = started + Duration::from_secs(600);
    let mut last_report = Instant::now();
    loop {
        let queued = queue.stats()?.pages;
        if queued >= want {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("only {queued} of {want} pages queued after 10 minutes");
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  {queued}/{want} queued");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    agent.await??;
    let quarantined = queue.stats()?.quarantined;
    if quarantined > 0 {
        anyhow::bail!("{quarantined} files were quarantined");
    }
    // Every cover must have been read, or the figure is for the wrong work.
    let covers = queue
        .recent_packets(u32::MAX)?
        .iter()
        .filter(|p| p.cover_code.is_some())
        .count();
    let want_covers = (0..staged.len())
        .filter(|i| (i % DISTINCT).is_multiple_of(COVER_EVERY))
        .count();
    if covers != want_covers {
        anyhow::bail!("{covers} covers read, {want_covers} expected");
    }
    Ok(want as f64 / elapsed.as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pages: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 300,
    };
    let root = tempfile::tempdir()?;
    let staging = root.path().join("staging");
    std::fs::create_dir_all(&staging)?;

    eprintln!("generating {DISTINCT} distinct scan-like pages...");
    let images: Vec<Vec<u8>> = (0..DISTINCT)
        .map(|i| encode_jpeg(&scan_like(i)))
        .collect::<anyhow::Result<_>>()?;
    let mean_kb = images.iter().map(Vec::len).sum::<usize>() as f64 / DISTINCT as f64 / 1024.0;
    let mut staged = Vec::with_capacity(pages);
    for i in 0..pages {
        let path = staging.join(format!("scan_{i:05}.jpg"));
        std::fs::write(&path, &images[i % DISTINCT])?;
        staged.push(path);
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let baseline = decode_only(&staged, 1)?;
    let ceiling = decode_only(&staged, cores)?;
    let agent = agent_ingest(root.path(), &staged).await?;
    println!(
        "{pages} pages, 300 dpi grey A4 JPEG, mean {mean_kb:.0} KB, every {COVER_EVERY}th a cover, {cores} cores"
    );
    println!("JPEG decode only, 1 thread:      {baseline:>7.1} pages/s");
    println!("JPEG decode only, {cores} threads:     {ceiling:>7.1} pages/s");
    println!("agent ingest (watch → queue):    {agent:>7.1} pages/s");
    println!(
        "ratio to decode-only: {:.2} (1 thread), {:.2} ({cores} threads)",
        agent / baseline,
        agent / ceiling
    );
    Ok(())
}
