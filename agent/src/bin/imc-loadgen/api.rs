//! The admin side of the HTTP API the load generator needs: enrolment,
//! documents, status and image lists, each answer checked for its status.

use anyhow::Context;
use imc_shared::ImageMode;
use imc_shared::api::{
    CreateDocument, DocumentCreated, EnrollRequest, EnrollResponse, EnrollmentCode, ErrorBody,
    ImageList, PutScheme,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Tries of one call while the server answers 429.
const MAX_ATTEMPTS: u32 = 60;

/// How long a 429 asks the caller to wait (100 ms when it does not say).
pub fn retry_after(response: &reqwest::Response) -> std::time::Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map_or(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs,
        )
}

/// One server, reached with the admin token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends the request `build` makes, waiting out the server's rate limit
    /// (429 with `Retry-After`) so setup and verification never fail on it.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let mut attempts = 0;
        loop {
            let response = build().send().await.with_context(|| what.to_owned())?;
            attempts += 1;
            if response.status() != reqwest::StatusCode::TOO_MANY_REQUESTS
                || attempts >= MAX_ATTEMPTS
            {
                return Ok(response);
            }
            tokio::time::sleep(retry_after(&response)).await;
        }
    }

    async fn read<T: DeserializeOwned>(
        what: &str,
        response: reqwest::Response,
    ) -> anyhow::Result<T> {
        let status = response.status();
        if !status.is_success() {
            let message = match response.json::<ErrorBody>().await {
                Ok(body) => body.error.message,
                Err(_) => status.to_string(),
            };
            anyhow::bail!("{what}: {status}: {message}");
        }
        response
            .json()
            .await
            .with_context(|| format!("{what}: unreadable answer"))
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        auth: bool,
    ) -> anyhow::Result<T> {
        let what = format!("POST {}", self.url(path));
        let response = self
            .send(&what, || {
                let request = self.http.post(self.url(path)).json(body);
                if auth {
                    request.bearer_auth(&self.token)
                } else {
                    request
                }
            })
            .await?;
        Api::read(&what, response).await
    }

    /// Mints a one-time code and trades it for an agent identity, as `imc-agent enroll` does.
    pub async fn enroll(&self, site: &str, name: &str) -> anyhow::Result<EnrollResponse> {
        let url = self.url(&format!("/sites/{site}/enrollment-codes"));
        let what = format!("POST {url}");
        let response = self
            .send(&what, || self.http.post(&url).bearer_auth(&self.token))
            .await?;
        let code: EnrollmentCode = Api::read(&what, response).await?;
        self.post(
            "/agents/enroll",
            &EnrollRequest {
                code: code.code,
                name: name.to_owned(),
                agent_version: Some(format!("imc-loadgen {}", env!("CARGO_PKG_VERSION"))),
                // Simulated desks use their token alone: no mutual TLS.
                csr: None,
            },
            false,
        )
        .await
    }

    /// Makes documents of `doc_type` scanned-paper documents (match mode), so
    /// packets sealed under their cover codes attach to them. Idempotent.
    pub async fn match_scheme(&self, doc_type: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("/schemes/{doc_type}-match"));
        let what = format!("PUT {url}");
        let scheme = PutScheme {
            org: None,
            doc_type: Some(doc_type.to_owned()),
            mode: ImageMode::Match,
            rules: None,
        };
        let response = self
            .send(&what, || {
                self.http.put(&url).bearer_auth(&self.token).json(&scheme)
            })
            .await?;
        let _: serde_json::Value = Api::read(&what, response).await?;
        Ok(())
    }

    pub async fn create_document(&self, doc: &CreateDocument) -> anyhow::Result<DocumentCreated> {
        self.post("/documents", doc, true)
            .await
            .with_context(|| format!("creating document {}", doc.doc_no))
    }

    pub async fn images(&self, document_id: i64) -> anyhow::Result<ImageList> {
        let url = self.url(&format!("/documents/{document_id}/images"));
        let what = format!("GET {url}");
        let response = self
            .send(&what, || self.http.get(&url).bearer_auth(&self.token))
            .await?;
        Api::read(&what, response).await
    }
}
