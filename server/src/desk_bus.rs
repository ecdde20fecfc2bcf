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

use crate::uplink::CloseReason;
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
    /// elsewhere closes as `replaced`.
    SessionTaken { agent: String, by: Uuid },
}

/// An event and the replica that published it (which ignores its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: Uuid,
    #[serde(flatten)]
    pub event: DeskEvent,
}

pub trait DeskBus: Send + Sync + 'static {
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
}

impl LocalBus {
    pub fn new() -> LocalBus {
        LocalBus {
            silent: broadcast::channel(1).0,
        }
    }
}

impl Default for LocalBus {
    fn default() -> LocalBus {
        LocalBus::new()
    }
}

impl DeskBus for LocalBus {
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
}
