//! Log lines on stderr, as text or JSON, filtered by `IMC_LOG`.

use clap::ValueEnum;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// The `--log-format` flag, else the config file's `log_format`, else text.
    pub fn choose(flag: Option<LogFormat>, file: Option<&str>) -> anyhow::Result<LogFormat> {
        match (flag, file) {
            (Some(format), _) => Ok(format),
            (None, Some(name)) => LogFormat::from_str(name, true).map_err(|_| {
                anyhow::anyhow!("log_format {name:?} in the config file: use \"text\" or \"json\"")
            }),
            (None, None) => Ok(LogFormat::Text),
        }
    }
}

pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMC_LOG")
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().with_current_span(true).init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
