//! `imc-agent service` (Windows only): runs the agent under the Windows
//! service control manager, which starts it with this command line and stops
//! it with a control event instead of a console signal.

use crate::config::AgentConfig;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;

/// The name `imc-installer` registers the service under.
pub const SERVICE_NAME: &str = "com.imc.agent";

/// The dispatcher calls back on its own thread with no way to pass state,
/// so the config path from our command line waits here.
static CONFIG_PATH: OnceLock<PathBuf> = OnceLock::new();

/// Blocks until the service manager stops the service.
pub fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let _ = CONFIG_PATH.set(config_path);
    service_dispatcher::start(SERVICE_NAME, service_entry)
        .map_err(|e| anyhow::anyhow!("starting the service dispatcher: {e}"))
}

// The start arguments the manager passes are not needed (the config path is
// on the command line), so the raw pointers are never read.
extern "system" fn service_entry(_argc: u32, _argv: *mut *mut u16) {
    if let Err(e) = serve() {
        tracing::error!(error = format!("{e:#}"), "agent service failed");
    }
}

fn status(state: ServiceState, accept: ServiceControlAccept, code: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(code),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

fn serve() -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let handler = move |event| match event {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(SERVICE_NAME, handler)
        .map_err(|e| anyhow::anyhow!("registering the control handler: {e}"))?;
    let accept = ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN;
    handle
        .set_service_status(status(ServiceState::Running, accept, 0))
        .map_err(|e| anyhow::anyhow!("reporting Running: {e}"))?;
    let result = (|| {
        let path = CONFIG_PATH
            .get()
            .ok_or_else(|| anyhow::anyhow!("no config path"))?;
        let config = AgentConfig::load(path)?;
        tokio::runtime::Runtime::new()?.block_on(crate::run(config, shutdown))
    })();
    // A non-zero exit code makes the manager apply its restart-on-failure actions.
    let code = if result.is_ok() { 0 } else { 1 };
    let _ = handle.set_service_status(status(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        code,
    ));
    result
}
