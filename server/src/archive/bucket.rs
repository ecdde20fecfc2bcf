//! An archive destination under a prefix of an S3-compatible object store.
//! An object store has no rename, so a bag is complete once its signature
//! (`tagmanifest-sha256.txt.sig`), written last, is there: a bag without
//! one is what a crash left, and the next export deletes and rewrites it.

use super::bag::{self, DESTINATION_MARKER, SIGNATURE_FILE};
use super::destination::Destination;
use super::folder::{Held, LEASE_FILE};
use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    url: String,
    /// When this export last wrote its lease.
    leased_at: Mutex<Instant>,
}

/// How long a lease holds without being renewed: an export that died
/// frees the prefix after this.
const LEASE: Duration = Duration::from_secs(15 * 60);
/// How often a running export renews its lease.
const RENEW: Duration = Duration::from_secs(5 * 60);

impl Bucket {
    /// `s3://bucket/prefix` with the `AWS_*` settings: takes the prefix's
    /// lease (one export at a time), refuses a prefix that holds objects
    /// but no marker, marks a new one, and deletes the objects of bags a
    /// crash left without their signature.
    pub async fn open(url: &str) -> anyhow::Result<Bucket> {
        let parsed = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
        let bucket_name = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| anyhow!("{url} names no bucket"))?;
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket_name)
            .build()
            .with_context(|| format!("opening {url}"))?;
        let prefix = Key::parse(parsed.path().trim_matches('/'))
            .with_context(|| format!("{url}: a bad prefix"))?;
        let bucket = Bucket {
            store: Arc::new(store),
            prefix,
            url: url.to_owned(),
            leased_at: Mutex::new(Instant::now()),
        };
        let (bags, loose) = bucket.listing().await?;
        let marker = bucket.key(DESTINATION_MARKER)?;
        let marked = match bucket.store.head(&marker).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(e).with_context(|| format!("reading {marker}")),
        };
        if !marked {
            if !bags.is_empty() || !loose.is_empty() {
                bail!(
                    "{url} holds objects but no {DESTINATION_MARKER}: it is not an IMC archive \
                     destination; name an empty or new prefix"
                );
            }
            bucket
                .store
                .put(
                    &marker,
                    PutPayload::from(b"IMC archive destination\n".to_vec()),
                )
                .await
                .with_context(|| format!("marking {url}"))?;
        }
        bucket.take_lease().await?;
        // Only now, with the lease: nothing else is writing these.
        for (name, files) in &bags {
            if bag::parse_bag_name(name).is_some() && !files.iter().any(|f| f == SIGNATURE_FILE) {
                for file in files {
                    let key = bucket.key(&format!("{name}/{file}"))?;
                    bucket
                        .store
                        .delete(&key)
                        .await
                        .with_context(|| format!("removing the unfinished bag {name}"))?;
                }
            }
        }
        Ok(bucket)
    }

    /// Writes the lease object unless another export's is younger than
    /// [`LEASE`].
    async fn take_lease(&self) -> anyhow::Result<()> {
        let key = self.key(LEASE_FILE)?;
        let now = chrono::Utc::now();
        let create = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(
                &key,
                PutPayload::from(now.to_rfc3339().into_bytes()),
                create,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("writing {key}")),
        }
        let held_since = self.read_text(&key).await?;
        let held_since = chrono::DateTime::parse_from_rfc3339(&held_since)
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let lease = chrono::Duration::from_std(LEASE).unwrap_or_default();
        if now - held_since < lease {
            bail!(
                "another export is writing to {} (its lease, {LEASE_FILE}, was renewed at {held_since}; \
                 one that died frees it {} minutes later)",
                self.url,
                LEASE.as_secs() / 60
            );
        }
        self.renew_lease().await
    }

    /// A small object's text (a lease, a bag-info).
    async fn read_text(&self, key: &Key) -> anyhow::Result<String> {
        let bytes = self
            .store
            .get(key)
            .await
            .with_context(|| format!("reading {key}"))?
            .bytes()
            .await
            .with_context(|| format!("reading {key}"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn renew_lease(&self) -> anyhow::Result<()> {
        let key = self.key(LEASE_FILE)?;
        self.store
            .put(
                &key,
                PutPayload::from(chrono::Utc::now().to_rfc3339().into_bytes()),
            )
            .await
            .with_context(|| format!("writing {key}"))?;
        *self
            .leased_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Ok(())
    }

    fn key(&self, path: &str) -> anyhow::Result<Key> {
        let mut key = self.prefix.clone();
        for part in path.split('/') {
            key = key.join(part);
        }
        Ok(key)
    }

    /// The folders under the prefix and the files in each, relative to
    /// the folder; and the objects directly under the prefix.
    async fn listing(&self) -> anyhow::Result<(BTreeMap<String, Vec<String>>, Vec<String>)> {
        let objects: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .with_context(|| format!("listing {}", self.url))?;
        let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut loose = Vec::new();
        for object in objects {
            let Some(relative) = object.location.prefix_match(&self.prefix) else {
                continue;
            };
            let parts: Vec<String> = relative.map(|p| p.as_ref().to_owned()).collect();
            match parts.as_slice() {
                [name] if name != DESTINATION_MARKER && name != LEASE_FILE => {
                    loose.push(name.clone());
                }
                [name, rest @ ..] if !rest.is_empty() => {
                    folders
                        .entry(name.clone())
                        .or_default()
                        .push(rest.join("/"));
                }
                _ => {}
            }
        }
        Ok((folders, loose))
    }
}

#[async_trait]
impl Destination for Bucket {
    async fn held(&self) -> anyhow::Result<Held> {
        let mut held = Held::default();
        for (name, files) in self.listing().await?.0 {
            let Some((document_id, version)) = bag::parse_bag_name(&name) else {
                continue;
            };
            if !files.iter().any(|f| f == SIGNATURE_FILE) {
                continue;
            }
            let key = self.key(&format!("{name}/{}", bag::BAG_INFO_FILE))?;
            let fields = bag::parse_bag_info(&self.read_text(&key).await?);
            let digest = bag::info_value(&fields, "IMC-Version-Digest").unwrap_or_default();
            held.add(document_id, version, digest.to_owned());
        }
        Ok(held)
    }

    async fn write_bag(&self, name: String, files: Vec<(String, Vec<u8>)>) -> anyhow::Result<u64> {
        let renew = self
            .leased_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            >= RENEW;
        if renew {
            self.renew_lease().await?;
        }
        let mut written = 0;
        // In order: the signature comes last, and only then is the bag whole.
        for (path, bytes) in files {
            let key = self.key(&format!("{name}/{path}"))?;
            written += bytes.len() as u64;
            self.store
                .put(&key, PutPayload::from(bytes))
                .await
                .with_context(|| format!("writing {key}"))?;
        }
        Ok(written)
    }

    async fn release(&self) {
        if let Ok(key) = self.key(LEASE_FILE)
            && let Err(e) = self.store.delete(&key).await
        {
            tracing::warn!(error = %e, "could not free the archive lease {key}");
        }
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
