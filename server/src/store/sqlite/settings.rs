//! Global settings: one row per field in the `settings` table, JSON values.
//!
//! A missing row means the default, so a new setting needs no migration.

use super::audit;
use crate::store::*;
use imc_shared::api::{Settings, SettingsPatch};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

const COVER_CODE_PATTERNS: &str = "cover_code_patterns";
const ACCEPTED_CONTENT_TYPES: &str = "accepted_content_types";
const MAX_IMAGE_BYTES: &str = "max_image_bytes";
const WEBHOOK_RETRY: &str = "webhook_retry";
const RETENTION_DAYS: &str = "retention_days";
const IMAGE_RETENTION_DAYS: &str = "image_retention_days";

fn get<T: serde::de::DeserializeOwned>(conn: &Connection, key: &str) -> StoreResult<Option<T>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))
    })
    .transpose()
}

fn set<T: serde::Serialize>(tx: &Transaction<'_>, key: &str, value: &T) -> StoreResult<()> {
    let text = serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))?;
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = ?2",
        params![key, text],
    )?;
    Ok(())
}

pub fn text(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Compare and set, in one statement.
pub fn replace_text(
    tx: &Transaction<'_>,
    key: &str,
    expected: Option<&str>,
    value: &str,
) -> StoreResult<bool> {
    let changed = match expected {
        None => tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            params![key, value],
        )?,
        Some(old) => tx.execute(
            "UPDATE settings SET value = ?3 WHERE key = ?1 AND value = ?2",
            params![key, old, value],
        )?,
    };
    Ok(changed == 1)
}

pub fn load(conn: &Connection) -> StoreResult<Settings> {
    let d = Settings::default();
    Ok(Settings {
        cover_code_patterns: get(conn, COVER_CODE_PATTERNS)?.unwrap_or(d.cover_code_patterns),
        accepted_content_types: get(conn, ACCEPTED_CONTENT_TYPES)?
            .unwrap_or(d.accepted_content_types),
        max_image_bytes: get(conn, MAX_IMAGE_BYTES)?.unwrap_or(d.max_image_bytes),
        webhook_retry: get(conn, WEBHOOK_RETRY)?.unwrap_or(d.webhook_retry),
        retention_days: get(conn, RETENTION_DAYS)?.unwrap_or(d.retention_days),
        image_retention_days: get(conn, IMAGE_RETENTION_DAYS)?.unwrap_or(d.image_retention_days),
    })
}

pub fn cover_patterns(conn: &Connection) -> StoreResult<Vec<String>> {
    Ok(get(conn, COVER_CODE_PATTERNS)?.unwrap_or(Settings::default().cover_code_patterns))
}

pub fn update(tx: &Transaction<'_>, patch: SettingsPatch, actor: &Actor) -> StoreResult<Settings> {
    let current = load(tx)?;
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
    set(tx, COVER_CODE_PATTERNS, &next.cover_code_patterns)?;
    set(tx, ACCEPTED_CONTENT_TYPES, &next.accepted_content_types)?;
    set(tx, MAX_IMAGE_BYTES, &next.max_image_bytes)?;
    set(tx, WEBHOOK_RETRY, &next.webhook_retry)?;
    set(tx, RETENTION_DAYS, &next.retention_days)?;
    set(tx, IMAGE_RETENTION_DAYS, &next.image_retention_days)?;
    audit::append(
        tx,
        &audit::NewEntry {
            actor,
            document_id: None,
            action: "settings.put",
            from: None,
            to: None,
            reason: Some(&changed.join(", ")),
        },
    )?;
    Ok(next)
}
