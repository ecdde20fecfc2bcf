//! Shared partial uploads ([`crate::partials::SharedPartials`]): one row per
//! partial holding where its contiguous bytes end, one row per checkpointed
//! part. An append locks the partial's row, so two sessions (a takeover
//! across replicas) never both extend it; the part and the new end commit
//! together. Deleting a partial deletes its parts (cascade), so a sweep is
//! one statement that any number of replicas may run at once.

use super::PgStore;
use crate::partials::{PartialKey, SharedPartials};
use anyhow::Context;
use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

/// How long a checkpoint waits for a partial's row held by another session.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '1s'";

#[async_trait]
impl SharedPartials for PgStore {
    async fn load(&self, key: &PartialKey<'_>) -> anyhow::Result<Vec<u8>> {
        let conn = self.conn().await?;
        let id = key.capture_id.to_string();
        let Some(row) = conn
            .query_opt(
                "SELECT agent_id, sha256, size, durable FROM upload_partials WHERE capture_id = $1",
                &[&id],
            )
            .await
            .with_context(|| format!("reading partial upload {id}"))?
        else {
            return Ok(Vec::new());
        };
        let (agent, sha256, size, durable): (String, String, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if agent != key.agent_id
            || sha256 != key.sha256
            || u64::try_from(size).ok() != Some(key.size)
        {
            return Ok(Vec::new());
        }
        let parts = conn
            .query(
                "SELECT start_offset, bytes FROM upload_parts \
                 WHERE capture_id = $1 AND start_offset < $2 ORDER BY start_offset",
                &[&id, &durable],
            )
            .await
            .with_context(|| format!("reading the parts of partial upload {id}"))?;
        let mut bytes = Vec::new();
        for part in parts {
            let start: i64 = part.get(0);
            // Contiguous by construction; anything else ends what is usable.
            if u64::try_from(start).ok() != Some(bytes.len() as u64) {
                break;
            }
            bytes.extend_from_slice(part.get::<_, &[u8]>(1));
        }
        Ok(bytes)
    }

    async fn save(&self, key: &PartialKey<'_>, start: u64, bytes: &[u8]) -> anyhow::Result<u64> {
        let id = key.capture_id.to_string();
        let size = i64::try_from(key.size).context("page size")?;
        let start = i64::try_from(start).context("offset")?;
        let end = start + i64::try_from(bytes.len()).context("part length")?;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // A checkpoint is best effort and runs on the session's task: it
        // never waits long for a partial another replica holds (one frozen
        // mid-append holds the row until it runs again).
        tx.batch_execute(LOCK_TIMEOUT)
            .await
            .context("setting the lock timeout")?;
        // A page already stored (by the session that took this one over)
        // gets no partial again: it would wait for the sweep.
        tx.execute(
            "INSERT INTO upload_partials (capture_id, agent_id, sha256, size) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM pages WHERE capture_id = $1) \
             ON CONFLICT (capture_id) DO NOTHING",
            &[&id, &key.agent_id, &key.sha256, &size],
        )
        .await
        .with_context(|| format!("creating partial upload {id}"))?;
        let Some(row) = tx
            .query_opt(
                "SELECT agent_id, sha256, size, durable FROM upload_partials \
                 WHERE capture_id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .with_context(|| format!("locking partial upload {id}"))?
        else {
            // Stored meanwhile: nothing to keep.
            return Ok(u64::try_from(start).unwrap_or(0));
        };
        let (agent, sha256, held_size, durable): (String, String, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if agent != key.agent_id || sha256 != key.sha256 || held_size != size {
            anyhow::bail!("partial upload {id} is held for another agent or other bytes");
        }
        if durable != start || end > size {
            return Ok(u64::try_from(durable).unwrap_or(0));
        }
        tx.execute(
            "INSERT INTO upload_parts (capture_id, start_offset, bytes) VALUES ($1, $2, $3)",
            &[&id, &start, &bytes],
        )
        .await
        .with_context(|| format!("saving part {start} of partial upload {id}"))?;
        tx.execute(
            "UPDATE upload_partials SET durable = $2, touched_at = now() WHERE capture_id = $1",
            &[&id, &end],
        )
        .await?;
        // A replica frozen inside this transaction may run again long after
        // the session that took over stored the page and forgot the partial
        // (its delete could not see this uncommitted row): look again now,
        // so the row is not left behind for the sweep.
        let stored_meanwhile: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pages WHERE capture_id = $1)",
                &[&id],
            )
            .await
            .with_context(|| format!("checking whether page {id} is stored"))?
            .get(0);
        if stored_meanwhile {
            tx.rollback()
                .await
                .with_context(|| format!("dropping partial upload {id}"))?;
            self.forget(key.capture_id).await?;
            return Ok(u64::try_from(start).unwrap_or(0));
        }
        tx.commit()
            .await
            .with_context(|| format!("committing partial upload {id}"))?;
        Ok(u64::try_from(end).unwrap_or(0))
    }

    async fn forget(&self, capture_id: Uuid) -> anyhow::Result<()> {
        let id = capture_id.to_string();
        self.conn()
            .await?
            .execute("DELETE FROM upload_partials WHERE capture_id = $1", &[&id])
            .await
            .with_context(|| format!("dropping partial upload {id}"))?;
        Ok(())
    }

    async fn sweep(&self, ttl: Duration) -> anyhow::Result<u64> {
        let secs = ttl.as_secs_f64();
        Ok(self
            .conn()
            .await?
            .execute(
                "DELETE FROM upload_partials WHERE touched_at < now() - make_interval(secs => $1)",
                &[&secs],
            )
            .await
            .context("sweeping partial uploads")?)
    }
}
