//! Global settings: one row per field, JSON values; a missing row is the default.

use super::{audit, db};
use crate::store::audit_chain::NewEntry;
use crate::store::*;
use deadpool_postgres::GenericClient;
use imc_shared::api::{Settings, SettingsPatch};

const COVER_CODE_PATTERNS: &str = "cover_code_patterns";
const ACCEPTED_CONTENT_TYPES: &str = "accepted_content_types";
const MAX_IMAGE_BYTES: &str = "max_image_bytes";
const WEBHOOK_RETRY: &str = "webhook_retry";
const RETENTION_DAYS: &str = "retention_days";
const IMAGE_RETENTION_DAYS: &str = "image_retention_days";

async fn get<T: serde::de::DeserializeOwned>(
    c: &impl GenericClient,
    key: &str,
) -> StoreResult<Option<T>> {
    let text: Option<String> =
        db::query_opt(c, "SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .map(|r| r.get(0));
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))
    })
    .transpose()
}

async fn set<T: serde::Serialize + Sync>(
    tx: &impl GenericClient,
    key: &str,
    value: &T,
) -> StoreResult<()> {
    let text = serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))?;
    db::execute(
        tx,
        "INSERT INTO settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&key, &text],
    )
    .await?;
    Ok(())
}

pub async fn text(c: &impl GenericClient, key: &str) -> StoreResult<Option<String>> {
    Ok(
        db::query_opt(c, "SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .map(|r| r.get(0)),
    )
}

/// Compare and set, in one statement.
pub async fn replace_text(
    c: &impl GenericClient,
    key: &str,
    expected: Option<&str>,
    value: &str,
) -> StoreResult<bool> {
    let changed =
        match expected {
            None => db::execute(
                c,
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?,
            Some(old) => {
                db::execute(
                    c,
                    "UPDATE settings SET value = $3 WHERE key = $1 AND value = $2",
                    &[&key, &old, &value],
                )
                .await?
            }
        };
    Ok(changed == 1)
}

pub async fn load(c: &impl GenericClient) -> StoreResult<Settings> {
    let d = Settings::default();
    Ok(Settings {
        cover_code_patterns: get(c, COVER_CODE_PATTERNS)
            .await?
            .unwrap_or(d.cover_code_patterns),
        accepted_content_types: get(c, ACCEPTED_CONTENT_TYPES)
            .await?
            .unwrap_or(d.accepted_content_types),
        max_image_bytes: get(c, MAX_IMAGE_BYTES).await?.unwrap_or(d.max_image_bytes),
        webhook_retry: get(c, WEBHOOK_RETRY).await?.unwrap_or(d.webhook_retry),
        retention_days: get(c, RETENTION_DAYS).await?.unwrap_or(d.retention_days),
        image_retention_days: get(c, IMAGE_RETENTION_DAYS)
            .await?
            .unwrap_or(d.image_retention_days),
    })
}

pub async fn cover_patterns(c: &impl GenericClient) -> StoreResult<Vec<String>> {
    Ok(get(c, COVER_CODE_PATTERNS)
        .await?
        .unwrap_or(Settings::default().cover_code_patterns))
}

/// Two admins patching at once: the second waits for the first (the lock
/// on the settings rows), then merges onto its result.
pub async fn update(
    tx: &impl GenericClient,
    patch: SettingsPatch,
    actor: &Actor,
) -> StoreResult<Settings> {
    db::execute(tx, "LOCK TABLE settings IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
    let current = load(tx).await?;
    let changed: Vec<&str> = [
        (COVER_CODE_PATTERNS, patch.cover_code_patterns.is_some()),
        (
            ACCEPTED_CONTENT_TYPES,
            patch.accepted_content_types.is_some(),
        ),
        (MAX_IMAGE_BYTES, patch.max_image_bytes.is_some()),
        (WEBHOOK_RETRY, patch.webhook_retry.is_some()),
        (RETENTION_DAYS, patch.retention_days.is_some()),
        (IMAGE_RETENTION_DAYS, patch.image_retention_days.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let next = crate::settings::apply(current, patch).map_err(|e| StoreError::Invalid {
        field: e.field.to_owned(),
        message: e.message,
    })?;
    set(tx, COVER_CODE_PATTERNS, &next.cover_code_patterns).await?;
    set(tx, ACCEPTED_CONTENT_TYPES, &next.accepted_content_types).await?;
    set(tx, MAX_IMAGE_BYTES, &next.max_image_bytes).await?;
    set(tx, WEBHOOK_RETRY, &next.webhook_retry).await?;
    set(tx, RETENTION_DAYS, &next.retention_days).await?;
    set(tx, IMAGE_RETENTION_DAYS, &next.image_retention_days).await?;
    audit::append(
        tx,
        &NewEntry {
            actor,
            document_id: None,
            action: "settings.put",
            from: None,
            to: None,
            reason: Some(&changed.join(", ")),
        },
    )
    .await?;
    Ok(next)
}
