//! An archive destination under a prefix of an S3-compatible object store.
//! An object store has no rename, so a bag is complete once its signature
//! (`tagmanifest-sha256.txt.sig`), written last, is there: a bag without
//! one is what a crash left, and the next export deletes and rewrites it.

use super::bag::{self, DESTINATION_MARKER, SIGNATURE_FILE};
use super::destination::Destination;
use super::folder::Held;
use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    url: String,
}

impl Bucket {
    /// `s3://bucket/prefix` with the `AWS_*` settings; refuses a prefix that
    /// holds objects but no marker, marks a new one, and deletes the objects
    /// of bags a crash left without their signature.
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
        };
        let bags = bucket.listing().await?;
        let marker = bucket.key(DESTINATION_MARKER)?;
        let marked = bucket.store.head(&marker).await.is_ok();
        if !marked {
            if !bags.is_empty() {
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
        for (name, files) in &bags {
            if !files.iter().any(|f| f == SIGNATURE_FILE) {
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

    fn key(&self, path: &str) -> anyhow::Result<Key> {
        let mut key = self.prefix.clone();
        for part in path.split('/') {
            key = key.join(part);
        }
        Ok(key)
    }

    /// Every bag-shaped folder under the prefix (a name `parse_bag_name`
    /// reads) and the files in it, relative to the bag.
    async fn listing(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let objects: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .with_context(|| format!("listing {}", self.url))?;
        let mut bags: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for object in objects {
            let Some(relative) = object.location.prefix_match(&self.prefix) else {
                continue;
            };
            let parts: Vec<String> = relative.map(|p| p.as_ref().to_owned()).collect();
            if let [name, rest @ ..] = parts.as_slice()
                && !rest.is_empty()
            {
                bags.entry(name.clone()).or_default().push(rest.join("/"));
            }
        }
        Ok(bags)
    }
}

#[async_trait]
impl Destination for Bucket {
    async fn held(&self) -> anyhow::Result<Held> {
        let mut held = Held::default();
        for (name, files) in self.listing().await? {
            let Some((document_id, version)) = bag::parse_bag_name(&name) else {
                continue;
            };
            if !files.iter().any(|f| f == SIGNATURE_FILE) {
                continue;
            }
            let key = self.key(&format!("{name}/{}", bag::BAG_INFO_FILE))?;
            let info = self
                .store
                .get(&key)
                .await
                .with_context(|| format!("reading {key}"))?
                .bytes()
                .await
                .with_context(|| format!("reading {key}"))?;
            let fields = bag::parse_bag_info(&String::from_utf8_lossy(&info));
            let digest = bag::info_value(&fields, "IMC-Version-Digest").unwrap_or_default();
            held.add(document_id, version, digest.to_owned());
        }
        Ok(held)
    }

    async fn write_bag(&self, name: String, files: Vec<(String, Vec<u8>)>) -> anyhow::Result<u64> {
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

    fn describe(&self) -> String {
        self.url.clone()
    }
}
