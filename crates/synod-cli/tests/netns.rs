//! The several-hosts harness of `support/netns.rs` checked on its own: a
//! real `synod serve` on one namespace host is reachable from the test and
//! from another host, unreachable from both while its host is cut off, and
//! reachable again once healed. The cluster's partition tests rely on
//! exactly this.

mod support;

use std::time::{Duration, Instant};

use support::netns::Network;
use support::{TempDir, bin};

/// Whether `url` answers 200 within `timeout`, asked from the test's own
/// namespace.
fn reachable(url: &str, timeout: Duration) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    agent.get(url).call().is_ok()
}

/// Whether `url` answers 200 within one second, asked from host `from`.
fn reachable_from(net: &Network, from: usize, url: &str) -> bool {
    let script = format!(
        "import urllib.request,sys\ntry:\n urllib.request.urlopen({url:?}, timeout=1)\nexcept Exception:\n sys.exit(1)"
    );
    net.command(from, "python3")
        .args(["-c", &script])
        .status()
        .expect("python3 runs in the namespace")
        .success()
}

#[test]
fn a_cut_host_is_unreachable_until_healed() {
    let net = Network::new(&format!("sn{}", std::process::id() % 100_000), 201, 2);
    let dir = TempDir::new("netns");
    let data = dir.path().to_str().unwrap().to_string();
    let mut node = net.spawn(
        0,
        bin(),
        &["serve", "--listen", "0.0.0.0:7400", "--data-dir", &data],
    );
    let url = format!("http://{}:7400/healthz", net.address(0));
    let until = Instant::now() + Duration::from_secs(30);
    while !reachable(&url, Duration::from_secs(1)) {
        assert!(Instant::now() < until, "the node never answered on {url}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reachable_from(&net, 1, &url), "host 1 cannot reach host 0");

    net.cut(0);
    assert!(!reachable(&url, Duration::from_millis(500)));
    assert!(!reachable_from(&net, 1, &url));

    net.heal(0);
    let until = Instant::now() + Duration::from_secs(10);
    while !reachable(&url, Duration::from_secs(1)) {
        assert!(
            Instant::now() < until,
            "the node stayed unreachable after healing"
        );
    }
    assert!(reachable_from(&net, 1, &url));
    node.kill().unwrap();
    node.wait().unwrap();
}
