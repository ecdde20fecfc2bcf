//! Validation of global settings: a partial update is merged into the
//! current settings, then the whole result is checked, so no combination of
//! updates can store something the server would refuse to run with.

use imc_shared::CoverPatterns;
use imc_shared::api::{Settings, SettingsPatch};

/// Content types the capture API can recognise from the bytes themselves.
pub const SNIFFABLE: [&str; 6] = [
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/bmp",
    "image/webp",
    "application/pdf",
];
const MAX_PATTERNS: usize = 32;
const MAX_PATTERN_LEN: usize = 256;
/// The uplink refuses pages over 64 MiB; uploads get some headroom for PDFs.
const MAX_IMAGE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct SettingsError {
    pub field: &'static str,
    pub message: String,
}

fn fail<T>(field: &'static str, message: impl Into<String>) -> Result<T, SettingsError> {
    Err(SettingsError {
        field,
        message: message.into(),
    })
}

pub fn apply(current: Settings, patch: SettingsPatch) -> Result<Settings, SettingsError> {
    let retry = patch.webhook_retry.unwrap_or_default();
    let next = Settings {
        cover_code_patterns: patch
            .cover_code_patterns
            .unwrap_or(current.cover_code_patterns),
        accepted_content_types: patch
            .accepted_content_types
            .unwrap_or(current.accepted_content_types),
        max_image_bytes: patch.max_image_bytes.unwrap_or(current.max_image_bytes),
        webhook_retry: imc_shared::api::WebhookRetry {
            max_attempts: retry
                .max_attempts
                .unwrap_or(current.webhook_retry.max_attempts),
            base_delay_secs: retry
                .base_delay_secs
                .unwrap_or(current.webhook_retry.base_delay_secs),
        },
        retention_days: patch.retention_days.unwrap_or(current.retention_days),
        image_retention_days: patch
            .image_retention_days
            .unwrap_or(current.image_retention_days),
    };
    validate(&next)?;
    Ok(next)
}

pub fn validate(s: &Settings) -> Result<(), SettingsError> {
    const PATTERNS: &str = "cover_code_patterns";
    if s.cover_code_patterns.is_empty() || s.cover_code_patterns.len() > MAX_PATTERNS {
        return fail(PATTERNS, format!("give 1 to {MAX_PATTERNS} patterns"));
    }
    for p in &s.cover_code_patterns {
        if p.trim().is_empty() || p.len() > MAX_PATTERN_LEN {
            return fail(
                PATTERNS,
                format!("each pattern must be 1-{MAX_PATTERN_LEN} characters"),
            );
        }
    }
    if let Err(e) = CoverPatterns::new(&s.cover_code_patterns) {
        return fail(PATTERNS, e.to_string());
    }
    const TYPES: &str = "accepted_content_types";
    if s.accepted_content_types.is_empty() {
        return fail(TYPES, "accept at least one content type");
    }
    if let Some(t) = s
        .accepted_content_types
        .iter()
        .find(|t| !SNIFFABLE.contains(&t.as_str()))
    {
        return fail(
            TYPES,
            format!("{t:?} is not one of {}", SNIFFABLE.join(", ")),
        );
    }
    if !(1024..=MAX_IMAGE_BYTES).contains(&s.max_image_bytes) {
        return fail(
            "max_image_bytes",
            format!("must be between 1024 and {MAX_IMAGE_BYTES}"),
        );
    }
    if !(1..=100).contains(&s.webhook_retry.max_attempts) {
        return fail("webhook_retry.max_attempts", "must be between 1 and 100");
    }
    if !(1..=3600).contains(&s.webhook_retry.base_delay_secs) {
        return fail(
            "webhook_retry.base_delay_secs",
            "must be between 1 and 3600",
        );
    }
    if !(1..=36500).contains(&s.retention_days) {
        return fail("retention_days", "must be between 1 and 36500");
    }
    if s.image_retention_days > 36500 {
        return fail(
            "image_retention_days",
            "must be between 0 (keep image bytes) and 36500",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imc_shared::api::WebhookRetryPatch;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Settings::default()), Ok(()));
    }

    #[test]
    fn a_partial_update_keeps_the_rest() {
        let patch = SettingsPatch {
            webhook_retry: Some(WebhookRetryPatch {
                base_delay_secs: Some(2),
                max_attempts: None,
            }),
            ..Default::default()
        };
        let next = apply(Settings::default(), patch).unwrap_or_default();
        assert_eq!(next.webhook_retry.base_delay_secs, 2);
        assert_eq!(
            next.webhook_retry.max_attempts,
            Settings::default().webhook_retry.max_attempts
        );
        assert_eq!(
            next.cover_code_patterns,
            Settings::default().cover_code_patterns
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: [(SettingsPatch, &str); 7] = [
            (
                SettingsPatch {
                    cover_code_patterns: Some(vec!["(unclosed".into()]),
                    ..Default::default()
                },
                "cover_code_patterns",
            ),
            (
                SettingsPatch {
                    cover_code_patterns: Some(vec![]),
                    ..Default::default()
                },
                "cover_code_patterns",
            ),
            (
                SettingsPatch {
                    accepted_content_types: Some(vec!["image/gif".into()]),
                    ..Default::default()
                },
                "accepted_content_types",
            ),
            (
                SettingsPatch {
                    max_image_bytes: Some(10),
                    ..Default::default()
                },
                "max_image_bytes",
            ),
            (
                SettingsPatch {
                    webhook_retry: Some(WebhookRetryPatch {
                        max_attempts: Some(0),
                        base_delay_secs: None,
                    }),
                    ..Default::default()
                },
                "webhook_retry.max_attempts",
            ),
            (
                SettingsPatch {
                    retention_days: Some(0),
                    ..Default::default()
                },
                "retention_days",
            ),
            (
                SettingsPatch {
                    image_retention_days: Some(36_501),
                    ..Default::default()
                },
                "image_retention_days",
            ),
        ];
        for (patch, field) in cases {
            let err = apply(Settings::default(), patch).err().map(|e| e.field);
            assert_eq!(err, Some(field));
        }
    }
}
