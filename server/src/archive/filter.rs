//! Which documents an export takes, from the words a person gives.

use crate::store::ArchiveFilter;
use anyhow::{Context, bail};
use chrono::NaiveDate;
use imc_shared::DocStatus;

/// An export's filter from a person's words (the command line's flags, an
/// API body); refused with a message naming the word before anything is
/// written. `prefix` is put before the words' names in messages: `--` for
/// the command line's flags, nothing for an API body's fields.
pub fn filter(
    prefix: &str,
    status: &str,
    from: Option<&str>,
    to: Option<&str>,
    source_system: Option<String>,
) -> anyhow::Result<ArchiveFilter> {
    let status: DocStatus = status.parse().map_err(|_| {
        let known: Vec<_> = DocStatus::ALL.iter().map(|s| s.as_str()).collect();
        anyhow::anyhow!(
            "{prefix}status: unknown status {status:?}: one of {}",
            known.join(", ")
        )
    })?;
    let day = |name: &str, text: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .with_context(|| format!("{prefix}{name} {text:?} is not a date (YYYY-MM-DD)"))
    };
    let from = from.map(|t| day("from", t)).transpose()?;
    let to = to.map(|t| day("to", t)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        bail!("{prefix}from {from} is after {prefix}to {to}");
    }
    Ok(ArchiveFilter {
        status,
        source_system,
        created_from: from.map(|d| d.format("%Y-%m-%d").to_string()),
        created_before: to
            .and_then(|d| d.succ_opt())
            .map(|d| d.format("%Y-%m-%d").to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_dates_and_statuses_are_refused_naming_them() {
        let e = filter("--", "signed", None, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown status \"signed\"") && e.contains("ready"),
            "{e}"
        );
        let e = filter("--", "ready", Some("2026-13-01"), None, None).unwrap_err();
        assert!(e.to_string().contains("--from \"2026-13-01\""), "{e}");
        let e = filter("--", "ready", Some("2026-02-01"), Some("2026-01-01"), None).unwrap_err();
        assert!(e.to_string().contains("after --to"), "{e}");
        let f = filter("--", "ready", Some("2026-01-01"), Some("2026-12-31"), None).unwrap();
        assert_eq!(f.created_from.as_deref(), Some("2026-01-01"));
        assert_eq!(f.created_before.as_deref(), Some("2027-01-01"));
    }
}
