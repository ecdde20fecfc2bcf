//! Refusals made before routing, and the one shape of every error answer.
//!
//! A body declared larger than the server takes is refused before a byte of
//! it is read, and so before `100 Continue` is sent; an HTTP/1.1 request
//! without `Host` is malformed; a URI or header block larger than any real
//! client sends is refused here, in JSON, before hyper's own (bodiless)
//! backstops. Error answers that a framework part made without a body, or
//! as plain text (405 from the router, 413 from a body limit), are rewritten
//! into the JSON error shape the API documents.

use crate::error::error_response;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;

/// Longest request target accepted (hyper's own limit is 64 KiB, bodiless).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest header block accepted (hyper's buffer is ~400 KiB).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields accepted (hyper's own limit is above this).
pub const MAX_HEADER_FIELDS: usize = 100;
/// A plain-text error body larger than this is not carried into the JSON.
const MAX_TEXT_ERROR_BYTES: usize = 4096;

pub async fn refuse_early(
    State(max_body_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    // Only for requests off the wire: in-process callers (tests) build requests without one.
    let from_the_wire = crate::net::peer_ip(&request).is_some();
    if from_the_wire
        && request.version() == Version::HTTP_11
        && !request.headers().contains_key(header::HOST)
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "an HTTP/1.1 request must name its Host",
        );
    }
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return error_response(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        );
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADER_FIELDS || header_bytes > MAX_HEADER_BYTES {
        return error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!(
                "at most {MAX_HEADER_FIELDS} header fields and {MAX_HEADER_BYTES} bytes of headers"
            ),
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>());
    match declared {
        Some(Err(_)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Content-Length is not a number",
            );
        }
        Some(Ok(n)) if n > max_body_bytes as u64 => {
            let mut response = error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("request bodies are limited to {max_body_bytes} bytes"),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            let (parts, body) = request.into_parts();
            refuse_body(&parts.headers, body);
            return response;
        }
        _ => {}
    }
    as_json_error(next.run(request).await).await
}

/// A body refused unread: a client that did not ask `100-continue` is
/// already sending, so what it sends is discarded (never kept) for a moment,
/// so that it finishes and reads the answer instead of a reset. One that
/// asked gets no `100 Continue`: nothing is read at all.
pub(crate) fn refuse_body(headers: &axum::http::HeaderMap, body: Body) {
    if !expects_continue(headers) {
        tokio::spawn(discard(body));
    }
}

/// How long an oversized body that is already on its way is read and thrown away.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

fn expects_continue(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

async fn discard(body: Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// An error answer with no body, or a plain-text one, in the JSON shape.
async fn as_json_error(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type.is_empty() || content_type.starts_with("text/plain")) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT_ERROR_BYTES)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .filter(|t| !t.is_empty());
    let message = text.unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned()
    });
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::REQUEST_TIMEOUT => "body_timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let mut json = error_response(status, code, &message);
    // Keep what the original said about the method or the connection.
    for name in [header::ALLOW, header::CONNECTION, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            json.headers_mut().insert(name, value.clone());
        }
    }
    let (json_parts, json_body) = json.into_parts();
    Response::from_parts(json_parts, Body::new(json_body))
}
