//! `synod serve`: one node on the embedded store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Deserialize;
use synod_node::cluster::ClusterConfig;
use synod_node::{Node, NodeConfig};

/// A config file (`--config FILE`): any of these keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub open: Option<bool>,
    pub allowed_hosts: Option<Vec<String>>,
    pub public_url: Option<String>,
    pub node_id: Option<u64>,
    pub cluster_secret: Option<PathBuf>,
}

impl ConfigFile {
    pub fn read(path: &std::path::Path) -> Result<ConfigFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a synod config file", path.display()))
    }
}

/// How long open connections may finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves `node` on `listener` until `shutdown` completes: the node's API,
/// events, inbox and metrics, and the MCP endpoint at `/mcp`.
pub async fn run(
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use axum::serve::ListenerExt as _;
    // The MCP adapter speaks the node's public API, here over loopback to
    // this very server; the node's own `Host` check guards `/mcp` too.
    let own = listener.local_addr()?;
    let api: Arc<dyn synod_mcp::Api> = Arc::new(crate::client::Client::direct(&format!(
        "http://{}",
        loopback(own)
    )));
    // Every request to /mcp must carry an agent token, so that nobody opens
    // sessions (each holds server memory) without being an agent.
    let mcp = axum::Router::new()
        .nest_service("/mcp", synod_mcp::http_service(api))
        .layer(axum::middleware::from_fn(require_agent_token));
    // Small frames (event streams, short answers) must not wait for Nagle's
    // algorithm and a delayed ACK.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    // Open event streams never end by themselves: give connections a grace
    // period after the shutdown signal, then stop regardless.
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let app = synod_node::router_with(node.clone(), mcp);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    });
    let grace = async move {
        let _ = stopping_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server => served.context("serving HTTP")?,
        () = grace => {}
    }
    node.shutdown();
    node.close().await;
    Ok(())
}

/// Refuses a request without a well-formed agent token, before rmcp sees it.
async fn require_agent_token(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if synod_mcp::bearer_agent(request.headers()).is_some() {
        return next.run(request).await;
    }
    (
        axum::http::StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({
            "error": "unauthorized",
            "message": "/mcp needs `Authorization: Bearer <agent token>` (synod_at_ and 64 hex characters, from `synod agent token`)",
        })),
    )
        .into_response()
}

/// Where this process reaches its own listener: loopback when it listens on
/// every address.
fn loopback(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Ctrl-C, or SIGTERM (how service managers stop a process).
pub async fn ctrl_c() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

pub fn serve(listen: &str, config: NodeConfig, cluster: Option<ClusterConfig>) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let node = match &cluster {
            None => Node::open(&config),
            Some(cluster) => Node::open_cluster(&config, cluster.clone()).await,
        }
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr: SocketAddr = listener.local_addr()?;
        let (space, entries, agents) =
            node.read(|s| (s.id().to_string(), s.head().next_index, s.agents().len()));
        // The first line is for scripts and tests: the address actually bound.
        println!("listening on http://{addr}");
        println!("synod serving space {space}");
        println!(
            "  data       {} ({entries} log entries, {agents} agents; {} replayed after the latest snapshot)",
            config.data_dir.display(),
            node.replayed_at_open()
        );
        println!("  admin key  {}", node.admin_key_path().display());
        if let Some(cluster) = &cluster {
            println!(
                "  cluster    node {} ({})",
                cluster.node_id,
                if entries == 0 {
                    "waiting for `synod cluster init` or `join`".to_string()
                } else {
                    format!("{} members", node.cluster().map_or(0, |c| c.status().members.len()))
                }
            );
        }
        println!("  inbox      http://{addr}/");
        println!("  api        http://{addr}/v1  (OpenAPI at /openapi.json)");
        println!(
            "  mcp        http://{addr}/mcp  (streamable HTTP; Authorization: Bearer <agent token>)"
        );
        run(node, listener, ctrl_c()).await
    })
}
