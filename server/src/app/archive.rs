//! Starting an archive export for an API caller: checked at once (the
//! destination configured and usable, the filter's words), then run in
//! the background, its progress kept for `GET /archive/exports/{id}`, its
//! start and end in the audit trail and its output counted in metrics.

use crate::archive::destination::{self, Destination};
use crate::archive::export::{Sources, export};
use crate::archive::filter::filter;
use crate::archive::jobs::Busy;
use crate::domain::Actor;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use imc_shared::api::{ExportJob, ExportRequest};

pub const EXPORT_ACTION: &str = "archive.export";

pub async fn start_export(
    state: &AppState,
    actor: &Actor,
    request: ExportRequest,
) -> ApiResult<ExportJob> {
    let Some(dir) = state.config.archive_dir.clone() else {
        return Err(ApiError::Conflict(
            "no archive destination is configured: start the server with --archive-dir \
             (or archive_dir in its config file)"
                .into(),
        ));
    };
    let filter = filter(
        "",
        request.status.as_deref().unwrap_or("ready"),
        request.from.as_deref(),
        request.to.as_deref(),
        request.source_system.clone(),
    )
    .map_err(|e| {
        let message = format!("{e:#}");
        match ["status", "from", "to"]
            .into_iter()
            .find(|f| message.starts_with(f))
        {
            Some(field) => ApiError::field(field, message),
            None => ApiError::bad_request(message),
        }
    })?;
    // The job first: it is what keeps a second export on this replica out
    // while the first opens (and cleans up) the destination.
    let job = state
        .archive_jobs
        .start(dir.to_string_lossy().into_owned())
        .map_err(|Busy(id)| ApiError::Conflict(format!("export {id} is still running")))?;
    let started = format!(
        "export {} to {} started: {} documents{}{}",
        job.id,
        job.out,
        filter.status.as_str(),
        request
            .source_system
            .as_deref()
            .map(|s| format!(" of {s}"))
            .unwrap_or_default(),
        match (&request.from, &request.to) {
            (None, None) => String::new(),
            (from, to) => format!(
                " created {} to {}",
                from.as_deref().unwrap_or("the start"),
                to.as_deref().unwrap_or("now")
            ),
        }
    );
    let opened = match destination::open(&job.out, Some(&state.config.data_dir)).await {
        Ok(destination) => state
            .store
            .audit_event(actor, EXPORT_ACTION, &started)
            .await
            .map(|()| destination)
            .map_err(ApiError::from),
        Err(e) => Err(ApiError::Conflict(format!(
            "the archive destination: {e:#}"
        ))),
    };
    let destination = match opened {
        Ok(destination) => destination,
        Err(e) => {
            state.archive_jobs.finish(job.id, Err(e.to_string()));
            return Err(e);
        }
    };
    let (state, actor, id) = (state.clone(), actor.clone(), job.id);
    tokio::spawn(async move {
        let result = run(&state, &destination, &filter, id).await;
        let what = match &result {
            Ok(p) => format!(
                "export {id} done: {} bags written ({} bytes), {} documents already held, {} left for the next run",
                p.bags, p.bytes, p.unchanged, p.deferred
            ),
            Err(e) => format!("export {id} failed: {e}"),
        };
        if let Err(e) = state.store.audit_event(&actor, EXPORT_ACTION, &what).await {
            tracing::error!(error = %e, "could not audit the end of an archive export");
        }
        match &result {
            Ok(_) => tracing::info!("{what}"),
            Err(_) => tracing::error!("{what}"),
        }
        state.archive_jobs.finish(id, result);
    });
    Ok(job)
}

async fn run(
    state: &AppState,
    destination: &std::sync::Arc<dyn Destination>,
    filter: &crate::store::ArchiveFilter,
    id: u64,
) -> Result<crate::archive::export::Progress, String> {
    let keys = state
        .cover_keys
        .current(&*state.store)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let sources = Sources {
        store: &*state.store,
        blobs: &*state.blobs,
        keys: &keys,
    };
    let mut counted = crate::archive::export::Progress::default();
    export(&sources, destination, filter, |p| {
        state.archive_jobs.progress(id, p);
        crate::metrics::archive_written(p.bags - counted.bags, p.bytes - counted.bytes);
        counted = *p;
    })
    .await
    .map_err(|e| format!("{e:#}"))
}
