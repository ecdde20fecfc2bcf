//! The registry of live desk sessions: one per agent, a newer connection
//! taking over from the older one, notices and closes published on the desk
//! bus so that every replica applies them.

use super::*;

/// Notices waiting to go out on one connection; a slow desk drops the surplus.
pub(super) const NOTICE_BACKLOG: usize = 64;
/// How long a new connection waits for the one it replaces to wind down.
pub(super) const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected session: its generation, its notice channel, and its close switch.
pub(super) struct LiveSession {
    pub(super) generation: u64,
    pub(super) notices: mpsc::Sender<ServerMessage>,
    pub(super) close: watch::Sender<Option<CloseReason>>,
}

/// What a new session gets from [`Desks::register`].
pub(super) struct Registration {
    pub(super) generation: u64,
    pub(super) notices: mpsc::Receiver<ServerMessage>,
    pub(super) close: watch::Receiver<Option<CloseReason>>,
    /// Held for the whole session: the next session of the agent starts only
    /// once this one has finished, commits included.
    pub(super) turn: Arc<tokio::sync::Mutex<()>>,
}

/// The scan desks connected to this server, and a way to tell them things.
/// One session per agent: a newer connection closes the older one. What is
/// done to a session here is also published on the desk bus, so a session
/// live on another replica gets it too ([`Desks::follow`] applies theirs).
#[derive(Clone)]
pub struct Desks {
    pub(super) slots: Arc<Semaphore>,
    pub(super) live: Arc<std::sync::Mutex<HashMap<String, LiveSession>>>,
    /// Per agent, the lock a session holds while it runs.
    pub(super) turns: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// This process among the replicas; it ignores its own events.
    pub(super) replica: Uuid,
    pub(super) bus: Arc<dyn DeskBus>,
}

impl Desks {
    pub fn new(max_agents: usize, bus: Arc<dyn DeskBus>) -> Desks {
        Desks {
            slots: Arc::new(Semaphore::new(max_agents)),
            live: Arc::default(),
            turns: Arc::default(),
            replica: Uuid::new_v4(),
            bus,
        }
    }

    pub(super) fn publish(&self, event: DeskEvent) {
        self.bus.publish(Envelope {
            from: self.replica,
            event,
        });
    }

    /// Applies the other replicas' events to the sessions of this one until
    /// `stop`.
    pub async fn follow(self, stop: tokio_util::sync::CancellationToken) {
        let mut events = self.bus.subscribe();
        loop {
            let envelope = tokio::select! {
                _ = stop.cancelled() => return,
                received = events.recv() => match received {
                    Ok(envelope) => envelope,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "desk bus events missed");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            };
            if envelope.from == self.replica {
                continue;
            }
            match envelope.event {
                DeskEvent::Notice { agent, notice } => {
                    self.notify_here(&agent, notice);
                }
                DeskEvent::Disconnect { agent, reason } => {
                    self.disconnect_here(&agent, reason);
                }
                DeskEvent::SessionTaken {
                    agent,
                    by,
                    generation,
                } => {
                    if self.taken_here(&agent, generation) {
                        tracing::info!(%agent, replica = %by, ?generation, "session taken over on another replica");
                    }
                }
            }
        }
    }

    /// Makes this the agent's live session and asks an older one to close,
    /// here and on the other replicas. The session's generation orders it
    /// among the agent's sessions on every replica ([`DeskBus::generation`]).
    pub(super) async fn register(&self, agent_id: &str) -> anyhow::Result<Registration> {
        let generation = self
            .bus
            .generation()
            .await
            .context("allocating a session generation")?;
        let (notices_tx, notices) = mpsc::channel(NOTICE_BACKLOG);
        let (close_tx, close) = watch::channel(None);
        let turn = {
            let mut turns = self
                .turns
                .lock()
                .map_err(|_| anyhow::anyhow!("desk registry lock poisoned"))?;
            Arc::clone(turns.entry(agent_id.to_owned()).or_default())
        };
        let mut live = self
            .live
            .lock()
            .map_err(|_| anyhow::anyhow!("desk registry lock poisoned"))?;
        let fresh = LiveSession {
            generation,
            notices: notices_tx,
            close: close_tx,
        };
        // Two connections raced and the newer one registered first: this one
        // is the older and closes at once.
        let outrun = live
            .get(agent_id)
            .is_some_and(|newer| newer.generation > generation);
        if outrun {
            let _ = fresh.close.send(Some(CloseReason::Replaced));
        } else if let Some(older) = live.insert(agent_id.to_owned(), fresh) {
            let _ = older.close.send(Some(CloseReason::Replaced));
        }
        drop(live);
        self.publish(DeskEvent::SessionTaken {
            agent: agent_id.to_owned(),
            by: self.replica,
            generation: Some(generation),
        });
        Ok(Registration {
            generation,
            notices,
            close,
            turn,
        })
    }

    /// Forgets a session, unless a newer one of the same agent replaced it.
    pub(super) fn unregister(&self, agent_id: &str, generation: u64) {
        if let Ok(mut live) = self.live.lock()
            && live
                .get(agent_id)
                .is_some_and(|s| s.generation == generation)
        {
            live.remove(agent_id);
        }
    }

    /// Closes the agent's live session, on whichever replica it is; true when
    /// it was on this one.
    pub fn disconnect(&self, agent_id: &str, reason: CloseReason) -> bool {
        self.publish(DeskEvent::Disconnect {
            agent: agent_id.to_owned(),
            reason,
        });
        self.disconnect_here(agent_id, reason)
    }

    /// Closes the agent's session here if the takeover announced for
    /// `generation` is newer than it; true when it did.
    pub(super) fn taken_here(&self, agent_id: &str, generation: Option<u64>) -> bool {
        let Ok(live) = self.live.lock() else {
            return false;
        };
        match live.get(agent_id) {
            Some(session) if takes_over(generation, session.generation) => {
                session.close.send(Some(CloseReason::Replaced)).is_ok()
            }
            _ => false,
        }
    }

    pub(super) fn disconnect_here(&self, agent_id: &str, reason: CloseReason) -> bool {
        let Ok(live) = self.live.lock() else {
            return false;
        };
        match live.get(agent_id) {
            Some(session) => session.close.send(Some(reason)).is_ok(),
            None => false,
        }
    }

    pub fn is_connected(&self, agent_id: &str) -> bool {
        self.live
            .lock()
            .map(|live| live.contains_key(agent_id))
            .unwrap_or(false)
    }

    /// Best effort: a desk that is offline hears nothing (its status shows the
    /// outcome it had). The session may be on another replica: published too.
    pub fn notify(&self, agent_id: &str, notice: DeskNotice) {
        self.publish(DeskEvent::Notice {
            agent: agent_id.to_owned(),
            notice: notice.clone(),
        });
        self.notify_here(agent_id, notice);
    }

    pub(super) fn notify_here(&self, agent_id: &str, notice: DeskNotice) -> bool {
        let sender = self
            .live
            .lock()
            .ok()
            .and_then(|live| live.get(agent_id).map(|s| s.notices.clone()));
        match sender {
            Some(tx) => tx.try_send(ServerMessage::Notice(notice)).is_ok(),
            None => false,
        }
    }
}
