//! Document status and image mode.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a document stands; the 3.06 status query answers these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocStatus {
    AwaitingImages,
    Matched,
    Ready,
    Rejected,
    Cancelled,
}

impl DocStatus {
    pub const ALL: [DocStatus; 5] = [
        DocStatus::AwaitingImages,
        DocStatus::Matched,
        DocStatus::Ready,
        DocStatus::Rejected,
        DocStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocStatus::AwaitingImages => "awaiting_images",
            DocStatus::Matched => "matched",
            DocStatus::Ready => "ready",
            DocStatus::Rejected => "rejected",
            DocStatus::Cancelled => "cancelled",
        }
    }

    /// True when approval may go on in the ERP.
    pub fn is_ready(self) -> bool {
        self == DocStatus::Ready
    }
}

impl fmt::Display for DocStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DocStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

/// How a document gets its images (影像模式).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImageMode {
    /// Images uploaded straight onto the document, no paper check.
    Basic,
    /// Images pushed by another system (e.g. invoice receiving).
    Sync,
    /// Paper scanned, matched by cover code, then signed off.
    Match,
}

impl ImageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageMode::Basic => "basic",
            ImageMode::Sync => "sync",
            ImageMode::Match => "match",
        }
    }
}

impl fmt::Display for ImageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageMode {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "basic" => Ok(ImageMode::Basic),
            "sync" => Ok(ImageMode::Sync),
            "match" => Ok(ImageMode::Match),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_through_str_and_json() {
        for status in DocStatus::ALL {
            assert_eq!(status.as_str().parse::<DocStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("done".parse::<DocStatus>().is_err());
    }
}
