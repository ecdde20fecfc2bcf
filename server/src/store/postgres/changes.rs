//! Live updates across replicas: the triggers of migration 2 queue a
//! notification on `imc_changes` for every changed document, packet and agent
//! row; PostgreSQL delivers it to every listening connection when the
//! transaction commits, and never for one that rolled back. One listening
//! connection per process turns them into [`Change`]s, whichever replica
//! made the change.

use super::listen::Feed;
use crate::store::Change;

pub const CHANNEL: &str = "imc_changes";
/// Most document ids one announcement lists; more say `many`.
const MAX_IDS: usize = 64;

/// The feed of this schema's committed changes; after a gap in listening
/// every desk reloads, since announcements may have been missed.
pub fn feed() -> Feed<Change> {
    let reload_all = Change {
        documents: Vec::new(),
        many: true,
        packets: true,
        agents: true,
    };
    Feed::new(CHANNEL, announce, Some(reload_all))
}

/// Payloads that arrived together go out as one announcement.
fn announce(payloads: &[&str]) -> Vec<Change> {
    let mut change = Change::default();
    for payload in payloads {
        add(&mut change, payload);
    }
    if change == Change::default() {
        Vec::new()
    } else {
        vec![change]
    }
}

/// Folds one payload (`d<id>`, `p`, `a`; the schema already removed) into `change`.
fn add(change: &mut Change, what: &str) {
    match what.split_at_checked(1) {
        Some(("d", id)) => match id.parse::<i64>() {
            Ok(id) if change.documents.contains(&id) => {}
            Ok(id) if change.documents.len() < MAX_IDS => change.documents.push(id),
            _ => change.many = true,
        },
        Some(("p", _)) => change.packets = true,
        Some(("a", _)) => change.agents = true,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_that_came_together_make_one_announcement() {
        let changes = announce(&["d5", "d5", "p", "a", "garbage", "dx"]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].documents, [5]);
        assert!(changes[0].packets && changes[0].agents && changes[0].many);
        assert!(announce(&["garbage"]).is_empty());
    }
}
