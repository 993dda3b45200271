//! Several hosts on one machine: Linux network namespaces joined by veth
//! pairs to one bridge, so that a test can run real `synod` processes on
//! separate hosts and cut a host off the network, then heal it.
//!
//! Host `i` (0-based) is the namespace `<prefix>-h<i>` with the address
//! `10.<net>.0.<i + 1>/24` on its side of a veth pair; the other side is a
//! port of the bridge `<prefix>-br`, which holds `10.<net>.0.254` in the
//! test's own namespace, so the test reaches every host directly. Cutting
//! host `i` sets its bridge port down: nothing gets in or out (a partition
//! of that host from everyone, the test included), and healing sets it up.
//!
//! Needs root (`ip netns`). Everything created is removed on drop, and any
//! leftovers of an earlier run with the same prefix are removed first.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

/// Runs `ip` with `args`; panics with its error output if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("the ip command (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip` with `args`, ignoring failure (cleanup of what may not exist).
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A set of hosts joined by a bridge.
pub struct Network {
    prefix: String,
    net: u8,
    hosts: usize,
}

impl Network {
    /// Creates `hosts` namespaces on the subnet `10.<net>.0.0/24`. `prefix`
    /// must be short (interface names have at most 15 bytes) and unique
    /// among tests that may run at once, and so must `net`.
    pub fn new(prefix: &str, net: u8, hosts: usize) -> Network {
        assert!(prefix.len() <= 8 && hosts <= 32);
        let network = Network {
            prefix: prefix.to_string(),
            net,
            hosts,
        };
        network.remove();
        let bridge = network.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("10.{net}.0.254/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..hosts {
            let ns = network.namespace(i);
            let (outside, inside) = network.veth(i);
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &ns]);
            ip(&["link", "set", &outside, "master", &bridge]);
            ip(&["link", "set", &outside, "up"]);
            let exec = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                ip(&all);
            };
            exec(&[
                "addr",
                "add",
                &format!("{}/24", network.address(i)),
                "dev",
                &inside,
            ]);
            exec(&["link", "set", &inside, "up"]);
            exec(&["link", "set", "lo", "up"]);
        }
        network
    }

    fn bridge(&self) -> String {
        format!("{}-br", self.prefix)
    }

    /// The namespace of host `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// (bridge side, host side) of host `i`'s veth pair.
    fn veth(&self, i: usize) -> (String, String) {
        (
            format!("{}-o{i}", self.prefix),
            format!("{}-i{i}", self.prefix),
        )
    }

    /// Host `i`'s address.
    pub fn address(&self, i: usize) -> String {
        format!("10.{}.0.{}", self.net, i + 1)
    }

    /// A command that runs `program` inside host `i`.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace(i), program]);
        command
    }

    /// Starts `program args…` inside host `i`.
    pub fn spawn(&self, i: usize, program: &str, args: &[&str]) -> Child {
        self.command(i, program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("a process starts in the namespace")
    }

    /// Cuts host `i` off: nothing reaches it and it reaches nothing.
    pub fn cut(&self, i: usize) {
        ip(&["link", "set", &self.veth(i).0, "down"]);
    }

    /// Reconnects host `i`.
    pub fn heal(&self, i: usize) {
        ip(&["link", "set", &self.veth(i).0, "up"]);
    }

    fn remove(&self) {
        for i in 0..self.hosts {
            ip_quiet(&["netns", "del", &self.namespace(i)]);
            ip_quiet(&["link", "del", &self.veth(i).0]);
        }
        ip_quiet(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}
