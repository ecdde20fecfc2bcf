//! The open-file limit: every streaming desk holds a socket and, while a
//! page's bytes arrive, its partial file, so the usual soft limit of 1,024
//! is below what the default `max_agents` needs. The soft limit is raised to
//! the hard one, as servers commonly do; a hard limit that is still too low
//! gets a warning naming the setting to change.

/// Descriptors a desk may hold at once: its socket and one partial file.
const PER_DESK: u64 = 2;
/// Descriptors the server holds besides desks: databases, logs, HTTP clients.
const BASE: u64 = 256;

/// Raises this process's open-file limit as far as allowed and warns when
/// `max_agents` desks could still run it out.
pub fn raise_for(max_agents: usize) {
    let needed = BASE + PER_DESK * max_agents as u64;
    match raise() {
        Ok(Some(limit)) if limit < needed => tracing::warn!(
            limit,
            needed,
            max_agents,
            "the open-file limit is below what max_agents streaming desks need; raise it (LimitNOFILE= in the systemd unit, ulimit -n) or lower --max-agents"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// The soft limit raised to the hard one; the limit now in force (`None`:
/// unlimited, or not a limit this platform has).
#[cfg(target_os = "linux")]
fn raise() -> std::io::Result<Option<u64>> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(current), Some(maximum)) = (limit.current, limit.maximum) else {
        return Ok(limit.current);
    };
    if current >= maximum {
        return Ok(Some(current));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        },
    )?;
    tracing::debug!(from = current, to = maximum, "open-file limit raised");
    Ok(Some(maximum))
}

#[cfg(not(target_os = "linux"))]
fn raise() -> std::io::Result<Option<u64>> {
    // Windows has no such per-process limit; other Unixes cap the hard
    // limit differently (macOS: OPEN_MAX) and are not server targets.
    Ok(None)
}
