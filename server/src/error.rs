//! One error type for the HTTP API, mapped to a status in one place.
//!
//! Server faults (500) are logged in full and answered generically, so no
//! internal detail leaks to a caller.

use crate::blobs::BlobError;
use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imc_shared::DocStatus;
use imc_shared::api::{ErrorBody, ErrorDetail, Purged};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("document is {current}; {message}")]
    InvalidTransition { current: DocStatus, message: String },
    #[error("request body too large")]
    TooLarge,
    /// Retention purged the bytes: 410 with when and why.
    #[error("the bytes of {what} were purged at {} ({})", purged.at, purged.reason)]
    Gone { what: String, purged: Purged },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: None,
            message: message.into(),
        }
    }
}

/// An identifier with a control or bidirectional formatting character.
impl From<imc_shared::text::TextError> for ApiError {
    fn from(e: imc_shared::text::TextError) -> Self {
        ApiError::BadRequest {
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Invalid { field, message } => ApiError::BadRequest {
                message: format!("{field}: {message}"),
                field: Some(field),
            },
            StoreError::InvalidTransition {
                current, action, ..
            } => ApiError::InvalidTransition {
                current,
                message: format!("{action} is not allowed"),
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound(sha) => ApiError::NotFound(format!("image bytes {sha}")),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// The JSON error shape for answers that are not an [`ApiError`] (budgets,
/// refusals made before routing).
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
            field: None,
            current_status: None,
            purged: None,
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Gone { .. } => (StatusCode::GONE, "purged"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                "internal server error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let field = match &self {
            ApiError::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        let current_status = match &self {
            ApiError::InvalidTransition { current, .. } => Some(*current),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
                field,
                current_status,
                purged: match &self {
                    ApiError::Gone { purged, .. } => Some(purged.clone()),
                    _ => None,
                },
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
