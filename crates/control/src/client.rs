//! A client of the API over HTTP (blocking, ureq): what `vpcflow
//! flow-log|resource|capture|records` send. Error statuses are answers,
//! not errors: their bodies name what is wrong.

use std::fs::File;
use std::path::PathBuf;

use serde_json::Value;

/// Largest answer read.
const MAX_ANSWER_BYTES: u64 = 1 << 30;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request failed (no server, the connection broke).
    #[error("{method} {url}: {message}")]
    Request {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The file to send could not be read.
    #[error("cannot read {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A method that sends a body was given none.
    #[error("{0} needs a body")]
    NoBody(String),
}

/// What a request sends.
#[derive(Debug)]
pub enum Body {
    /// A JSON document.
    Json(Value),
    /// A file's bytes, streamed (a capture upload).
    File(PathBuf),
}

/// The server's answer.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body as text.
    pub text: String,
    /// The body, if it is JSON.
    pub json: Option<Value>,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// An error answer's `code` and `message`.
    pub fn error(&self) -> Option<(&str, &str)> {
        let v = self.json.as_ref()?;
        Some((
            v["code"].as_str()?,
            v["message"].as_str().unwrap_or_default(),
        ))
    }
}

/// One project's calls to one API.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
    project: String,
}

impl Client {
    /// Calls to the API at `base` (`http://127.0.0.1:9696`) as `project`
    /// with its `token`.
    pub fn new(base: &str, token: &str, project: &str) -> Client {
        Client {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            project: project.to_string(),
        }
    }

    /// The URL of `path` under the project (`fl/flow_logs`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/v1/{}/{path}", self.base, self.project)
    }

    /// Sends `method` to `path` with `query` and `body`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
    ) -> Result<Answer, ClientError> {
        let url = self.url(path);
        let failed = |e: ureq::Error| ClientError::Request {
            method: method.to_string(),
            url: url.clone(),
            message: e.to_string(),
        };
        let token = self.token.as_str();
        let with = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            let mut r = r.header("X-Auth-Token", token);
            for (k, v) in query {
                r = r.query(*k, v);
            }
            r
        };
        let without = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
            let mut r = r.header("X-Auth-Token", token);
            for (k, v) in query {
                r = r.query(*k, v);
            }
            r
        };
        let agent = &self.agent;
        let sent = match (method, body) {
            ("GET", _) => without(agent.get(&url)).call(),
            ("DELETE", _) => without(agent.delete(&url)).call(),
            (m, Some(Body::Json(v))) => {
                let r = if m == "PUT" {
                    agent.put(&url)
                } else {
                    agent.post(&url)
                };
                with(r)
                    .header("Content-Type", "application/json")
                    .send(v.to_string().as_bytes())
            }
            (_, Some(Body::File(path))) => {
                let mut f = File::open(&path).map_err(|e| ClientError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                with(agent.post(&url))
                    .header("Content-Type", "application/octet-stream")
                    .send(ureq::SendBody::from_reader(&mut f))
            }
            (m, None) => return Err(ClientError::NoBody(m.to_string())),
        };
        let mut answer = sent.map_err(failed)?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(failed)?;
        let json = serde_json::from_str(&text).ok();
        Ok(Answer { status, text, json })
    }
}
