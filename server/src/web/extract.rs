//! Extractors whose rejections are the desk's own pages: a path that does
//! not name anything (`/ui/documents/abc`) is "no such page", not a
//! parser's message.

use super::error::UiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

pub struct DeskPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for DeskPath<T> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| DeskPath(p.0))
            .map_err(|_| UiError::NotFound(format!("the page {}", parts.uri.path())))
    }
}
