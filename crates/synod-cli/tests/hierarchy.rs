//! Hierarchical decisions (PROTOCOL.md §21) driven by the `synod` commands
//! against the real node: the admin sets a hierarchy, a worker proposes,
//! the executive is refused before the supervisor and decides after it,
//! and two of three workers overrule it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::*;

fn synod(node: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .args(["--node", node])
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn keygen(dir: &Path, name: &str) -> (String, String) {
    let file = dir.join(format!("{name}.key"));
    let out = Command::new(bin())
        .args(["keygen", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    (ok(out), file.to_string_lossy().into_owned())
}

#[test]
fn an_executive_overruled_through_the_cli() {
    let dir = TempDir::new("hierarchy");
    let server = Server::start(dir.path());
    let node = server.client().base.clone();
    let admin_key = dir.path().join("admin.key");
    let admin_key = admin_key.to_string_lossy().into_owned();
    let mut keys = std::collections::BTreeMap::new();
    for name in ["w1", "w2", "w3", "sup", "boss"] {
        let (did, file) = keygen(dir.path(), name);
        ok(synod(
            &node,
            &[
                "admin",
                "grant",
                &did,
                "--authority",
                "ops.*=1",
                "--role",
                "agent",
                "--admin-key",
                &admin_key,
            ],
        ));
        keys.insert(name, (did, file));
    }
    let did = |n: &str| keys[n].0.clone();
    let key = |n: &str| keys[n].1.clone();
    let hierarchy = json!({"ops.deploy": {
        "workers": [did("w1"), did("w2"), did("w3")], "supervisors": [did("sup")],
        "executive": did("boss"), "objection_window_ms": 3_600_000}});
    ok(synod(
        &node,
        &[
            "admin",
            "set",
            &format!("hierarchies={hierarchy}"),
            "--admin-key",
            &admin_key,
        ],
    ));
    // A supervisor may not propose in the hierarchy; a worker does.
    let propose = |who: &str| {
        synod(
            &node,
            &[
                "propose",
                "--key",
                &key(who),
                "--domain",
                "ops.deploy",
                "--kind",
                "deploy",
                "--summary",
                "Ship 5.0",
                "--confidence",
                "0.8",
                "--method",
                "hierarchy",
            ],
        )
    };
    let refused = propose("sup");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not_eligible"));
    let id = ok(propose("w1"));
    let review = |who: &str| {
        synod(
            &node,
            &[
                "review",
                &id,
                "approve",
                "--note",
                "ship it",
                "--key",
                &key(who),
            ],
        )
    };
    let early = review("boss");
    assert!(!early.status.success());
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("invalid_state"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    ok(synod(
        &node,
        &["respond", &id, "endorse", "0.8", "--key", &key("sup")],
    ));
    ok(review("boss"));
    let status = |node: &str| -> Value {
        serde_json::from_str(&ok(synod(node, &["status", &id, "--json"]))).unwrap()
    };
    assert_eq!(status(&node)["status"], "open");
    for w in ["w2", "w3"] {
        ok(synod(
            &node,
            &[
                "respond",
                &id,
                "challenge",
                "0.9",
                "--reasoning",
                "not ready",
                "--key",
                &key(w),
            ],
        ));
    }
    let detail = status(&node);
    assert_eq!(detail["status"], "escalated");
    assert_eq!(detail["reason"], "objected");
    assert_eq!(
        detail["hierarchy"]["objections"].as_array().unwrap().len(),
        2
    );
    assert_eq!(detail["package"]["hierarchy"]["note"], "ship it");
}
