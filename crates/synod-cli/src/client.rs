//! A small blocking client of a node's HTTP API, and the signing the CLI does
//! on a user's behalf.

use std::io::BufRead as _;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use synod_core::Keypair;
use synod_core::wire::{MessageType, Verified};

/// The error a node answered with.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub kind: String,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (HTTP {})", self.kind, self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

/// A client of one node.
#[derive(Debug)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// A client that never goes through a proxy from the environment: for a
    /// process reaching its own listener over loopback.
    pub fn direct(base: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .proxy(None)
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn answer(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut response =
            response.map_err(|e| anyhow!("{what}: cannot reach the node at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{what}: reading the answer"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            return Err(ApiError {
                status,
                kind: value["error"].as_str().unwrap_or("error").to_string(),
                message: value["message"]
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string),
            }
            .into());
        }
        Ok(value)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        self.answer(path, self.agent.get(&url).call())
    }

    pub fn get_text(&self, path: &str) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| anyhow!("cannot reach the node at {}: {e}", self.base))?;
        if response.status().as_u16() >= 400 {
            bail!("{path}: HTTP {}", response.status());
        }
        Ok(response.body_mut().read_to_string()?)
    }

    /// Streams the body of `path` into `out` (no size limit, no overall
    /// timeout); returns the bytes copied.
    pub fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        let url = format!("{}{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(None)
            .timeout_connect(Some(Duration::from_secs(30)))
            .build()
            .into();
        let response = agent
            .get(&url)
            .call()
            .map_err(|e| anyhow!("cannot reach the node at {}: {e}", self.base))?;
        if response.status().as_u16() >= 400 {
            bail!("{path}: HTTP {}", response.status());
        }
        let mut reader = response.into_body().into_reader();
        Ok(std::io::copy(&mut reader, out)?)
    }

    pub fn post(&self, path: &str, body: &Value, bearer: Option<&str>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .agent
            .post(&url)
            .header("content-type", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        self.answer(path, request.send(body.to_string()))
    }

    /// The space id and the node's clock.
    pub fn space(&self) -> Result<(String, u64)> {
        let space = self.get("/v1/space")?;
        let id = space["space"]
            .as_str()
            .context("the node did not name its space")?
            .to_string();
        let time = space["time"]
            .as_u64()
            .context("the node did not give its time")?;
        Ok((id, time))
    }

    /// Signs `body` (adding `space` and `created_at` from the node) and posts
    /// it to `path`.
    pub fn send(
        &self,
        path: &str,
        kind: MessageType,
        mut body: Value,
        key: &Keypair,
    ) -> Result<Value> {
        let space = self.get("/v1/space")?;
        body["space"] = space["space"].clone();
        body["created_at"] = space["time"].clone();
        if kind == MessageType::Proposal {
            // Proof-of-work admission (PROTOCOL.md §16), when the space asks
            // it of this key in this domain.
            let started = std::time::Instant::now();
            let minted = synod_mcp::stamp_if_required(self, &space, &mut body, key.id())
                .map_err(|f| anyhow::anyhow!("{}: {}", f.kind, f.message))?;
            if let Some(bits) = minted {
                eprintln!(
                    "minted an admission stamp of {bits} bits in {:.2} s (your trust in this domain is below the space's admission threshold)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        let message = Verified::sign(kind, body, key);
        self.post(path, &message.to_value(), None)
    }

    /// Reads Server-Sent Events from `path`, calling `on_event(id, name,
    /// data)` for each until it returns false.
    pub fn events(
        &self,
        path: &str,
        last_id: Option<&str>,
        mut on_event: impl FnMut(&str, &str, &Value) -> Result<bool>,
    ) -> Result<()> {
        let url = format!("{}{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(None)
            .build()
            .into();
        let mut request = agent.get(&url).header("accept", "text/event-stream");
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request
            .call()
            .map_err(|e| anyhow!("cannot reach the node at {}: {e}", self.base))?;
        if response.status().as_u16() >= 400 {
            bail!("events: HTTP {}", response.status());
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let (mut id, mut name, mut data) = (String::new(), String::new(), String::new());
        for line in reader.lines() {
            let line = line?;
            if line.is_empty() {
                if !data.is_empty() {
                    let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                    if !on_event(&id, &name, &value)? {
                        return Ok(());
                    }
                }
                name.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_string();
            } else if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        Ok(())
    }
}

/// The MCP adapter reaches the node through this client.
impl synod_mcp::Api for Client {
    fn get(&self, path: &str) -> std::result::Result<Value, synod_mcp::Failure> {
        Client::get(self, path).map_err(mcp_failure)
    }

    fn post(&self, path: &str, body: &Value) -> std::result::Result<Value, synod_mcp::Failure> {
        Client::post(self, path, body, None).map_err(mcp_failure)
    }
}

fn mcp_failure(e: anyhow::Error) -> synod_mcp::Failure {
    match e.downcast_ref::<ApiError>() {
        Some(api) => synod_mcp::Failure {
            kind: api.kind.clone(),
            message: api.message.clone(),
        },
        None => synod_mcp::Failure {
            kind: "unreachable".into(),
            message: format!("{e:#}"),
        },
    }
}
