//! Errors on the desk become a small HTML page (or, for a login that ran
//! out, a redirect to the login form); server faults are logged in full.

use crate::error::ApiError;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("login required")]
    LoginRequired,
    #[error("the form's security token is missing or wrong; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// Retention purged the bytes (410).
    #[error("{0}")]
    Gone(String),
    /// A budget is spent (password checks): try again shortly (429).
    #[error("the server is busy; try again in a few seconds")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> UiError {
        ApiError::from(e).into()
    }
}

impl From<crate::blobs::BlobError> for UiError {
    fn from(e: crate::blobs::BlobError) -> UiError {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        match e {
            ApiError::Unauthorized => UiError::LoginRequired,
            ApiError::Forbidden(m) => UiError::Forbidden(m),
            ApiError::NotFound(m) => UiError::NotFound(m),
            e @ (ApiError::BadRequest { .. } | ApiError::TooLarge) => {
                UiError::BadRequest(e.to_string())
            }
            e @ (ApiError::Conflict(_) | ApiError::InvalidTransition { .. }) => {
                UiError::Conflict(e.to_string())
            }
            e @ ApiError::Gone { .. } => UiError::Gone(e.to_string()),
            ApiError::Internal(e) => UiError::Internal(e),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match &self {
            UiError::LoginRequired => return Redirect::to("/ui/login").into_response(),
            UiError::Csrf | UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::Gone(_) => StatusCode::GONE,
            UiError::Busy => StatusCode::TOO_MANY_REQUESTS,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            UiError::Internal(e) => {
                tracing::error!(error = ?e, "desk request failed");
                "internal server error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        // No session (and so no language) is known here: say it in both.
        let body = html! {
            main.error {
                h1 { "出错了 · Something went wrong" }
                p.flash.error role="alert" { (message) }
                p { a href="/ui/queue" { "签收队列 · Sign-off queue" } }
            }
        };
        let page = super::layout::bare(super::i18n::Lang::En, "Error", body);
        (status, page).into_response()
    }
}

pub type UiResult<T> = Result<T, UiError>;

/// The desk's refusals (`auth::Refuse`): the login page for someone not
/// logged in, an error page for staff whose role falls short.
pub fn desk_refusal(anonymous: bool, needed: &str) -> Response {
    if anonymous {
        UiError::LoginRequired.into_response()
    } else {
        UiError::Forbidden(format!("this page needs {needed}")).into_response()
    }
}
