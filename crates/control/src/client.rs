//! A client of the API over HTTP (blocking, ureq): what `vpcflow
//! flow-log|resource|capture|records` send. Error statuses are answers,
//! not errors: their bodies name what is wrong.

use std::fs::File;
use std::path::PathBuf;

use serde_json::Value;

/// Largest answer read.
const MAX_ANSWER_BYTES: u64 = 1 << 30;

/// An answer's status and body text (at most [`MAX_ANSWER_BYTES`]).
fn status_and_text(
    answer: &mut ureq::http::Response<ureq::Body>,
) -> Result<(u16, String), ureq::Error> {
    let status = answer.status().as_u16();
    let text = answer
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()?;
    Ok((status, text))
}

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
        let (status, text) = status_and_text(&mut sent.map_err(failed)?).map_err(failed)?;
        let json = serde_json::from_str(&text).ok();
        Ok(Answer { status, text, json })
    }
}

/// The model an agent of the fleet fetched (`GET /v1/agent/model`).
#[derive(Debug, Clone)]
pub struct AgentModel {
    /// The host its token is bound to.
    pub host: String,
    /// The change counter it was read at.
    pub generation: u64,
    /// The projects with a port bound to the host, as one inventory
    /// document.
    pub inventory: Value,
    /// Projects left out (their model does not check), with why.
    pub skipped: Vec<(String, String)>,
}

/// An agent's calls to the server, with its agent token.
pub struct AgentClient {
    agent: ureq::Agent,
    base: String,
    token: String,
    /// Sent with every request: the agent's version.
    pub version: String,
}

impl AgentClient {
    /// Calls to the server at `base` with the agent token `token`.
    pub fn new(base: &str, token: &str) -> AgentClient {
        AgentClient {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                // Past the longest long poll.
                .timeout_global(Some(
                    crate::agents::MODEL_WAIT_MAX + std::time::Duration::from_secs(15),
                ))
                .build()
                .into(),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The host's model once it is newer than `after` (at once when
    /// `after` is `None`), waiting at most `wait` for a change. A refusal
    /// (a bad token, another host's) is an error naming the server's words.
    pub fn model(
        &self,
        after: Option<u64>,
        wait: std::time::Duration,
    ) -> Result<AgentModel, ClientError> {
        let url = format!("{}/v1/agent/model", self.base);
        let failed = |message: String| ClientError::Request {
            method: "GET".to_string(),
            url: url.clone(),
            message,
        };
        let mut r = self
            .agent
            .get(&url)
            .header("X-Auth-Token", &self.token)
            .header(crate::agents::VERSION_HEADER, &self.version)
            .query("wait", wait.as_secs().to_string());
        if let Some(g) = after {
            r = r.query("after", g.to_string());
        }
        let (status, text) = r
            .call()
            .and_then(|mut a| status_and_text(&mut a))
            .map_err(|e| failed(e.to_string()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| failed(format!("{status}: not JSON ({e}): {text:.200}")))?;
        if !(200..300).contains(&status) {
            return Err(failed(format!(
                "{status} {}: {}",
                v["code"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or_default()
            )));
        }
        let (Some(host), Some(generation)) = (v["host"].as_str(), v["generation"].as_u64()) else {
            return Err(failed(format!(
                "an answer without host and generation: {text:.200}"
            )));
        };
        let skipped = v["skipped"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|x| {
                        (
                            x["project"].as_str().unwrap_or_default().to_string(),
                            x["reason"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(AgentModel {
            host: host.to_string(),
            generation,
            inventory: v["inventory"].clone(),
            skipped,
        })
    }
}

/// How the server answered a shipped window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shipped {
    /// Taken (or taken before: a duplicate): it may leave the spool.
    Taken {
        /// It was a retry of one taken before.
        duplicate: bool,
    },
    /// Refused for good (a 4xx: the window is not this agent's to send,
    /// or not a window); the server's words.
    Refused(String),
}

impl AgentClient {
    /// Ships one window (its records file and summary, as its store wrote
    /// them), saying the spool's depth and the windows lost so far. A
    /// server that cannot be reached or fails (5xx) is an error: the
    /// window stays, to be sent again.
    pub fn ship(
        &self,
        group: &str,
        topic: &str,
        name: &str,
        summary: &[u8],
        records: &[u8],
        (spool_depth, lost): (u64, u64),
    ) -> Result<Shipped, ClientError> {
        let url = format!("{}/v1/agent/windows", self.base);
        let failed = |message: String| ClientError::Request {
            method: "POST".to_string(),
            url: url.clone(),
            message,
        };
        let body = crate::agents::window_body(summary, records);
        let (status, text) = self
            .agent
            .post(&url)
            .header("X-Auth-Token", &self.token)
            .header(crate::agents::VERSION_HEADER, &self.version)
            .header(crate::agents::SPOOL_HEADER, spool_depth.to_string())
            .header(crate::agents::LOST_HEADER, lost.to_string())
            .header("Content-Type", "application/octet-stream")
            .query("log_group_id", group)
            .query("log_topic_id", topic)
            .query("name", name)
            .send(&body[..])
            .and_then(|mut a| status_and_text(&mut a))
            .map_err(|e| failed(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(Shipped::Taken {
                duplicate: v["duplicate"].as_bool().unwrap_or(false),
            }),
            // Too many requests and timeouts pass; the rest will not.
            400..=499 if status != 408 && status != 429 => Ok(Shipped::Refused(format!(
                "{status} {}: {}",
                v["code"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or(&text)
            ))),
            _ => Err(failed(format!("{status}: {text:.200}"))),
        }
    }
}
