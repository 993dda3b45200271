//! The cluster's HTTP transport: replicas reach each other with `POST`s to
//! `/raft/v1/…` on the peer's ordinary listener, each carrying a postcard
//! body and the MAC of [`crate::auth`], each answer MAC'd back.
//!
//! The client is hyper's pooled HTTP/1.1 client (hyper is already under
//! axum, so this adds no crate to the build): connections are kept open and
//! reused, so a heartbeat costs one round trip and no handshake. The server
//! side is [`Replica::serve_rpc`](crate::Replica::serve_rpc), which the
//! node's router calls with the body of an authenticated request.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{ClusterSecret, REPLY_HEADER, REQUEST_HEADER};
use crate::network::{Target, Transport, TransportError};
use crate::{SynodRaft, TypeConfig};

/// Largest body of a peer request or answer other than a snapshot: 32
/// entries (`default_config`'s `max_payload_entries`) of at most
/// [`MAX_BATCH_BYTES`](crate::payload::MAX_BATCH_BYTES) each, with room for
/// their framing.
pub const MAX_PEER_BODY_BYTES: usize = 72 * 1024 * 1024;
/// Largest snapshot a replica accepts whole.
pub const MAX_SNAPSHOT_BYTES: usize = 1024 * 1024 * 1024;
/// Longest a connection attempt to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections to a peer are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// The kinds of Raft request, and their paths.
pub const RPC_KINDS: [&str; 4] = ["append", "vote", "pre-vote", "snapshot"];

/// Why a request to a peer got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No connection could be made: the request was certainly not
    /// delivered.
    #[error("{0} is unreachable: {1}")]
    Unreachable(String, String),
    /// The request may have been delivered, but no valid answer came back
    /// (timeout, reset, or an answer that failed its MAC check).
    #[error("no valid answer from {0}: {1}")]
    Lost(String, String),
    /// The URL is not `http://host:port`.
    #[error("{0:?} is not a peer URL (http://host:port)")]
    BadUrl(String),
}

/// An authenticated answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Checks that `url` is `http://host[:port]` with nothing after it but an
/// optional `/`: what a peer's address must look like.
pub fn check_peer_url(url: &str) -> Result<(), PeerError> {
    let bad = || PeerError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@', ' '])
        || authority.len() > 255
    {
        return Err(bad());
    }
    authority
        .parse::<hyper::http::uri::Authority>()
        .map_err(|_| bad())?;
    Ok(())
}

/// Sends MAC'd requests to peers and checks their answers. Cheap to clone:
/// clones share the connection pool.
#[derive(Debug, Clone)]
pub struct PeerClient {
    client: Client<HttpConnector, Full<Bytes>>,
    secret: ClusterSecret,
}

impl PeerClient {
    /// A client for a cluster with `secret`. Must be created and used inside
    /// a Tokio runtime.
    pub fn new(secret: ClusterSecret) -> PeerClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        PeerClient { client, secret }
    }

    /// The cluster secret.
    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// `POST`s `body` to `path` on the peer at `base` (`http://host:port`)
    /// and returns its answer, whatever the status, once the answer's MAC
    /// checks out. `time_ms` is the request's time (what a membership change
    /// is judged fresh by). Answers larger than `limit` are refused.
    pub async fn post(
        &self,
        base: &str,
        path: &str,
        body: Vec<u8>,
        time_ms: u64,
        limit: usize,
        timeout: Duration,
    ) -> Result<Reply, PeerError> {
        check_peer_url(base)?;
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let lost = |why: String| PeerError::Lost(base.to_string(), why);
        let header = self.secret.request_header("POST", path, time_ms, &body);
        let request_mac = self.secret.request_mac("POST", path, time_ms, &body);
        let request = hyper::Request::post(&url)
            .header(REQUEST_HEADER, header)
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| PeerError::BadUrl(base.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    PeerError::Unreachable(base.to_string(), e.to_string())
                } else {
                    lost(e.to_string())
                }
            })?;
            let status = response.status().as_u16();
            let mac = response
                .headers()
                .get(REPLY_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| lost(format!("reading the answer: {e}")))?
                .to_bytes()
                .to_vec();
            self.secret
                .check_reply(mac.as_deref(), &request_mac, status, &body)
                .map_err(|e| lost(format!("{e} (status {status})")))?;
            Ok(Reply { status, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(lost(format!("no answer within {timeout:?}"))),
        }
    }
}

/// Milliseconds since the Unix epoch, for a request's MAC.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Encodes a value for a peer with postcard.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("peer messages serialize")
}

/// Decodes a peer's postcard body.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable body: {e}"))
}

/// The [`Transport`] of a real cluster: Raft requests over HTTP.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: PeerClient,
}

/// Longest one Raft exchange may take at the HTTP level; openraft bounds
/// each by its own, shorter, deadline first.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);

impl HttpTransport {
    /// A transport that authenticates with `client`'s secret.
    pub fn new(client: PeerClient) -> HttpTransport {
        HttpTransport { client }
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: &Target,
        kind: &str,
        request: &Req,
    ) -> Result<Resp, TransportError> {
        let lost = |why: String| TransportError::Lost {
            target: target.id,
            why,
        };
        let reply = self
            .client
            .post(
                &target.addr,
                &format!("/raft/v1/{kind}"),
                encode(request),
                now_ms(),
                MAX_PEER_BODY_BYTES,
                RPC_TIMEOUT,
            )
            .await
            .map_err(|e| match e {
                PeerError::Unreachable(..) | PeerError::BadUrl(_) => TransportError::Unreachable {
                    target: target.id,
                    why: e.to_string(),
                },
                PeerError::Lost(..) => lost(e.to_string()),
            })?;
        if reply.status != 200 {
            return Err(lost(format!(
                "status {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )));
        }
        decode(&reply.body).map_err(lost)
    }
}

impl Transport for HttpTransport {
    async fn append_entries(
        &self,
        target: &Target,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, TransportError> {
        self.call(target, "append", &rpc).await
    }

    async fn vote(
        &self,
        target: &Target,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, TransportError> {
        self.call(target, "vote", &rpc).await
    }

    async fn pre_vote(
        &self,
        target: &Target,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, TransportError> {
        self.call(target, "pre-vote", &rpc).await
    }

    async fn snapshot(
        &self,
        target: &Target,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
    ) -> Result<SnapshotResponse<TypeConfig>, TransportError> {
        self.call(
            target,
            "snapshot",
            &(vote, snapshot.meta, snapshot.snapshot),
        )
        .await
    }
}

/// Why a peer's Raft request was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// No such kind of request.
    #[error("no Raft request {0:?}")]
    UnknownKind(String),
    /// The body did not decode.
    #[error("{0}")]
    Malformed(String),
    /// openraft refused it (it is stopping, or its storage failed).
    #[error("raft: {0}")]
    Raft(String),
}

/// Handles one Raft request on `raft`: decodes it, hands it to openraft,
/// encodes the answer.
pub(crate) async fn serve_rpc(
    raft: &SynodRaft,
    kind: &str,
    body: &[u8],
) -> Result<Vec<u8>, RpcError> {
    let raft_err = |e: &dyn std::fmt::Display| RpcError::Raft(e.to_string());
    match kind {
        "append" => {
            let rpc: AppendEntriesRequest<TypeConfig> =
                decode(body).map_err(RpcError::Malformed)?;
            let answer = raft.append_entries(rpc).await.map_err(|e| raft_err(&e))?;
            Ok(encode(&answer))
        }
        "vote" | "pre-vote" => {
            let rpc: VoteRequest<TypeConfig> = decode(body).map_err(RpcError::Malformed)?;
            let answer = if kind == "vote" {
                raft.vote(rpc).await
            } else {
                raft.pre_vote(rpc).await
            }
            .map_err(|e| raft_err(&e))?;
            Ok(encode(&answer))
        }
        "snapshot" => {
            type Body = (
                VoteOf<TypeConfig>,
                openraft::type_config::alias::SnapshotMetaOf<TypeConfig>,
                Vec<u8>,
            );
            let (vote, meta, snapshot): Body = decode(body).map_err(RpcError::Malformed)?;
            let snapshot = SnapshotOf::<TypeConfig, Vec<u8>> { meta, snapshot };
            let answer = raft
                .install_full_snapshot(vote, snapshot)
                .await
                .map_err(|e| raft_err(&e))?;
            Ok(encode(&answer))
        }
        other => Err(RpcError::UnknownKind(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_plain_http_origins() {
        for good in [
            "http://127.0.0.1:7420",
            "http://10.0.0.2:80/",
            "http://node-1.example:7420",
            "http://[::1]:7420",
        ] {
            assert_eq!(check_peer_url(good), Ok(()), "{good}");
        }
        for bad in [
            "127.0.0.1:7420",
            "https://a:1",
            "http://",
            "http://a:1/raft",
            "http://u@a:1",
            "http://a:1?x",
            "http://a b:1",
        ] {
            assert!(check_peer_url(bad).is_err(), "{bad}");
        }
    }
}
