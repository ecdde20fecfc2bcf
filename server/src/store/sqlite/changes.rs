//! Which rows a committed write touched, announced to whoever listens (the
//! sign-off desk's live updates).
//!
//! SQLite's update hook on the writer connection notes the tables and
//! document ids a transaction changes; `SqliteStore::write` announces them
//! only after the commit succeeded, so a listener that reads at once sees the
//! new rows, and a rolled-back write is never announced.

use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Most document ids one announcement lists; a bigger write says `many`.
const MAX_IDS: usize = 64;

/// What one committed transaction changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Documents whose row changed (status, images count via `updated_at`).
    pub documents: Vec<i64>,
    /// More documents changed than `documents` lists.
    pub many: bool,
    pub packets: bool,
    pub agents: bool,
}

impl Change {
    fn is_empty(&self) -> bool {
        self.documents.is_empty() && !self.many && !self.packets && !self.agents
    }
}

#[derive(Clone)]
pub struct Changes {
    pending: Arc<Mutex<Change>>,
    sender: broadcast::Sender<Change>,
}

impl Changes {
    pub fn new() -> Changes {
        Changes {
            pending: Arc::default(),
            // Listeners that fall this far behind get `Lagged` and reload.
            sender: broadcast::channel(256).0,
        }
    }

    pub fn install(&self, conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
        let pending = Arc::clone(&self.pending);
        conn.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, table: &str, rowid: i64| {
                let Ok(mut change) = pending.lock() else {
                    return;
                };
                match table {
                    "documents" if change.documents.contains(&rowid) => {}
                    "documents" if change.documents.len() < MAX_IDS => change.documents.push(rowid),
                    "documents" => change.many = true,
                    "packets" => change.packets = true,
                    "agents" => change.agents = true,
                    _ => {}
                }
            },
        ))
    }

    /// After a commit: announce what it changed.
    pub fn committed(&self) {
        let change = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        if !change.is_empty() {
            // No listener is not an error.
            let _ = self.sender.send(change);
        }
    }

    /// After a rollback: forget what it would have changed.
    pub fn rolled_back(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = Change::default();
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
