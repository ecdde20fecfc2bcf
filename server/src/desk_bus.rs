//! Desk events across replicas: what one replica must tell an agent session
//! that may be live on another.
//!
//! [`crate::uplink::Desks`] keeps the sessions of this process and acts on
//! them at once; everything it does to a session it also publishes here, and
//! every replica applies what the others published to its own sessions. The
//! embedded server is one process, so its bus ([`LocalBus`]) carries nothing;
//! on PostgreSQL ([`crate::store::PgStore::desk_bus`]) events travel by
//! `NOTIFY imc_desks`, sent right after the change they report committed.
//! Best effort, like the notices themselves: an event lost while a replica's
//! listening connection is down is a notice the desk misses, never a page.

use crate::domain::CloseReason;
use imc_shared::protocol::DeskNotice;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Something to do to an agent's live session, wherever it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeskEvent {
    /// Tell the desk about one of its packets (late binding, rejection).
    Notice { agent: String, notice: DeskNotice },
    /// Close the session now (the agent was revoked).
    Disconnect { agent: String, reason: CloseReason },
    /// A newer session of the agent started on replica `by`; an older one
    /// elsewhere closes as `replaced`. Older means a lower `generation`
    /// ([`DeskBus::generation`]): a late notice never closes a session that
    /// started after the one it announces. `None` (a replica of a version
    /// before generations) closes whatever session it finds.
    SessionTaken {
        agent: String,
        by: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<u64>,
    },
}

/// Whether a takeover notice for `notice` closes a live session of
/// `session`: only one for a strictly newer session does.
pub fn takes_over(notice: Option<u64>, session: u64) -> bool {
    notice.is_none_or(|notice| notice > session)
}

/// An event and the replica that published it (which ignores its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: Uuid,
    #[serde(flatten)]
    pub event: DeskEvent,
}

/// A session generation, once allocated.
pub type Generation<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<u64>> + Send + 'a>>;

pub trait DeskBus: Send + Sync + 'static {
    /// A generation for a new session, greater than that of every session
    /// that started before this call on any replica sharing the bus.
    fn generation(&self) -> Generation<'_>;
    /// Sends to every replica, without waiting; best effort.
    fn publish(&self, envelope: Envelope);
    /// Events published by any replica (this one's included, if the transport
    /// echoes them).
    fn subscribe(&self) -> broadcast::Receiver<Envelope>;
}

/// The embedded server: one process, no other replica to tell.
pub struct LocalBus {
    /// Never sent on: subscribers wait until the bus is dropped.
    silent: broadcast::Sender<Envelope>,
    /// One process: its own counter orders its sessions.
    generations: std::sync::atomic::AtomicU64,
}

impl LocalBus {
    pub fn new() -> LocalBus {
        LocalBus {
            silent: broadcast::channel(1).0,
            generations: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

impl Default for LocalBus {
    fn default() -> LocalBus {
        LocalBus::new()
    }
}

impl DeskBus for LocalBus {
    fn generation(&self) -> Generation<'_> {
        let next = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::pin(std::future::ready(Ok(next)))
    }

    fn publish(&self, _envelope: Envelope) {}

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.silent.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_as_small_json() {
        let envelope = Envelope {
            from: Uuid::nil(),
            event: DeskEvent::Disconnect {
                agent: "ag-1".into(),
                reason: CloseReason::Revoked,
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(json.contains(r#""event":"disconnect""#), "{json}");
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), envelope);
    }

    #[test]
    fn a_notice_for_an_older_or_equal_generation_leaves_the_session_open() {
        assert!(!takes_over(Some(6), 7), "older");
        assert!(!takes_over(Some(7), 7), "the session's own");
        assert!(takes_over(Some(8), 7), "newer");
        assert!(takes_over(None, 7), "from a replica without generations");
    }

    #[test]
    fn a_takeover_carries_its_generation_and_reads_without_one() {
        let envelope = Envelope {
            from: Uuid::nil(),
            event: DeskEvent::SessionTaken {
                agent: "ag-1".into(),
                by: Uuid::nil(),
                generation: Some(42),
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(json.contains(r#""generation":42"#), "{json}");
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), envelope);
        let old = r#"{"from":"00000000-0000-0000-0000-000000000000","event":"session_taken","agent":"ag-1","by":"00000000-0000-0000-0000-000000000000"}"#;
        assert!(matches!(
            serde_json::from_str::<Envelope>(old).unwrap().event,
            DeskEvent::SessionTaken {
                generation: None,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn local_generations_grow() {
        let bus = LocalBus::new();
        let first = bus.generation().await.unwrap();
        assert!(bus.generation().await.unwrap() > first);
    }
}
