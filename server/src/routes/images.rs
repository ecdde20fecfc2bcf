//! A document's images: the list, the bytes, and uploads through the
//! capture API (basic and sync modes).

use super::documents::{optional, require};
use super::extract::{ApiPath, ApiQuery};
use super::views::{self, Binary};
use crate::auth::Caller;
use crate::blobs::is_sha256_hex;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::NewImage;
use crate::workflow::Via;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imc_shared::api::{ErrorBody, ImageList, ImageView};
use serde::Deserialize;

#[utoipa::path(
    get, path = "/api/v1/documents/{id}/images", tag = "images",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document's images in page order (3.04)", body = ImageList),
        (status = 404, description = "No such document", body = ErrorBody),
    ),
)]
pub async fn images(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ImageList>> {
    require(&state, &caller, id).await?;
    let images = state.store.images(id).await?;
    Ok(Json(ImageList {
        document_id: id,
        images: images.into_iter().map(views::image).collect(),
    }))
}

/// Image bytes never change for an id, so clients may cache them for good.
#[utoipa::path(
    get, path = "/api/v1/images/{id}", tag = "images",
    params(
        ("id" = i64, Path, description = "Image id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a cached copy"),
    ),
    responses(
        (status = 200, description = "The image bytes, in their content type; cacheable for good (ETag = sha256)", body = Binary, content_type = "application/octet-stream"),
        (status = 304, description = "Not modified"),
        (status = 404, description = "No such image", body = ErrorBody),
        (status = 410, description = "Retention purged the bytes: `error.purged` says when and why", body = ErrorBody),
    ),
)]
pub async fn image_bytes(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let image = state
        .store
        .image(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("image {id}")))?;
    require(&state, &caller, image.document_id)
        .await
        .map_err(|_| ApiError::NotFound(format!("image {id}")))?;
    if let Some(purged) = image.purged {
        return Err(ApiError::Gone {
            what: format!("image {id}"),
            purged,
        });
    }
    blob_response(&state, &image.sha256, &image.content_type, &headers).await
}

pub async fn blob_response(
    state: &AppState,
    sha256: &str,
    content_type: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let etag = format!("\"{sha256}\"");
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable".to_owned(),
        ),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let bytes = state.blobs.get(sha256).await?;
    Ok((
        cache,
        [(header::CONTENT_TYPE, content_type.to_owned())],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The system that pushed the image (sync mode), e.g. `invoice-receiving`.
    #[serde(default)]
    source: Option<String>,
}

/// Header naming the pushing system, for clients that cannot add a query.
pub const SOURCE_HEADER: &str = "x-imc-source";

/// The capture API (basic and sync modes): the body is the image itself.
#[utoipa::path(
    post, path = "/api/v1/documents/{id}/images", tag = "images",
    params(
        ("id" = i64, Path, description = "Document id"),
        UploadQuery,
        ("X-IMC-Source" = Option<String>, Header, description = "The pushing system, as the source query parameter"),
    ),
    request_body(
        description = "The image itself (JPEG, PNG, TIFF, BMP, WebP or PDF; the type is sniffed from the bytes)",
        content(
            (Binary = "image/jpeg"),
            (Binary = "image/png"),
            (Binary = "image/tiff"),
            (Binary = "application/pdf"),
            (Binary = "application/octet-stream"),
        ),
    ),
    responses(
        (status = 201, description = "Attached as the next page; a basic or sync document becomes ready", body = ImageView),
        (status = 400, description = "Empty body, a type not accepted (sniffed from the bytes), or a damaged, truncated or oversized (decompression bomb) file", body = ErrorBody),
        (status = 404, description = "No such document", body = ErrorBody),
        (status = 409, description = "The document takes no uploaded images in its mode or status (e.g. match mode, cancelled)", body = ErrorBody),
        (status = 413, description = "Larger than max_image_bytes", body = ErrorBody),
    ),
)]
pub async fn upload_image(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImageView>)> {
    let header_source = headers
        .get(SOURCE_HEADER)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::field("source", "the X-IMC-Source header is not text"))
        })
        .transpose()?;
    let source = optional("source", query.source.or(header_source))?;
    let doc = require(&state, &caller, id).await?;
    let settings = state.store.settings().await?;
    let body = read_image_body(&headers, body, settings.max_image_bytes).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body must be the image bytes",
        ));
    }
    // Trust the bytes, not the declared Content-Type.
    let content_type = crate::untrusted::sniff_content_type(&body)
        .filter(|t| settings.accepted_content_types.iter().any(|a| a == t))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the body is not one of the accepted types: {}",
                settings.accepted_content_types.join(", ")
            ))
        })?;
    if crate::workflow::on_images(doc.mode, doc.status, Via::Upload).is_none() {
        return Err(ApiError::InvalidTransition {
            current: doc.status,
            message: format!(
                "a {} mode document in this status takes no uploaded images",
                doc.mode
            ),
        });
    }
    // Only a whole file that decodes within the limits is stored.
    crate::untrusted::check(body.to_vec(), content_type)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let size = body.len() as u64;
    // Cancel a pending retention deletion of these bytes before storing them.
    state
        .store
        .reserve_blobs(&[crate::blobs::sha256_hex(&body)])
        .await?;
    let sha256 = state.blobs.put(body.to_vec()).await?;
    debug_assert!(is_sha256_hex(&sha256));
    let image = state
        .store
        .add_image(
            id,
            NewImage {
                sha256,
                size,
                content_type: content_type.to_owned(),
                source,
            },
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(views::image(image))))
}

/// The upload's bytes, at most `limit` of them. A body declared larger is
/// refused before a byte is read (and so before `100 Continue`); one that
/// runs past the limit undeclared is refused as soon as it does.
async fn read_image_body(headers: &HeaderMap, body: Body, limit: u64) -> ApiResult<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        crate::early::refuse_body(headers, body);
        return Err(ApiError::TooLarge);
    }
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("the image body could not be read: {e}")))?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}
