//! `synod serve`: one node on the embedded store.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Deserialize;
use synod_node::{Node, NodeConfig};

/// A config file (`--config FILE`): any of these keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub open: Option<bool>,
}

impl ConfigFile {
    pub fn read(path: &std::path::Path) -> Result<ConfigFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a synod config file", path.display()))
    }
}

/// Serves `node` on `listener` until `shutdown` completes.
pub async fn run(
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, synod_node::router(node.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    node.shutdown();
    Ok(())
}

pub async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

pub fn serve(listen: &str, config: NodeConfig) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let node = Node::open(&config)
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
            "  data       {} ({entries} log entries, {agents} agents)",
            config.data_dir.display()
        );
        println!("  admin key  {}", node.admin_key_path().display());
        println!("  inbox      http://{addr}/");
        println!("  api        http://{addr}/v1  (OpenAPI at /openapi.json)");
        run(node, listener, ctrl_c()).await
    })
}
