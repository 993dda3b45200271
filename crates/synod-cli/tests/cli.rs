//! The offline tools as a new user runs them: `synod resolve`, `synod audit
//! verify` and `synod keygen`, through the real binary.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn synod() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synod"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = synod()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synod-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(serde::Deserialize)]
struct ResolveFile<'a> {
    #[serde(borrow)]
    cases: Vec<ResolveCase<'a>>,
}

#[derive(serde::Deserialize)]
struct ResolveCase<'a> {
    name: String,
    #[serde(borrow)]
    scenario: &'a serde_json::value::RawValue,
    expected: Option<Value>,
    error: Option<String>,
}

#[test]
fn resolve_reproduces_every_vector_from_stdin() {
    let raw = std::fs::read_to_string(repo().join("vectors/resolve.json")).unwrap();
    let file: ResolveFile<'_> = serde_json::from_str(&raw).unwrap();
    let belief_raw = std::fs::read_to_string(repo().join("vectors/belief.json")).unwrap();
    let belief: ResolveFile<'_> = serde_json::from_str(&belief_raw).unwrap();
    let stake_raw = std::fs::read_to_string(repo().join("vectors/stake.json")).unwrap();
    let stake: ResolveFile<'_> = serde_json::from_str(&stake_raw).unwrap();
    let hierarchy_raw = std::fs::read_to_string(repo().join("vectors/hierarchy.json")).unwrap();
    let hierarchy: ResolveFile<'_> = serde_json::from_str(&hierarchy_raw).unwrap();
    for case in file
        .cases
        .iter()
        .chain(&belief.cases)
        .chain(&stake.cases)
        .chain(&hierarchy.cases)
    {
        let out = run_with_stdin(&["resolve"], case.scenario.get());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match (&case.expected, &case.error) {
            (Some(expected), None) => {
                assert!(out.status.success(), "{}: {stderr}", case.name);
                let got: Value = serde_json::from_str(&stdout).unwrap();
                assert_eq!(&got, expected, "{}", case.name);
            }
            (None, Some(kind)) => {
                assert_eq!(out.status.code(), Some(1), "{}", case.name);
                assert!(stdout.is_empty(), "{}: printed a result", case.name);
                assert!(
                    stderr.starts_with(&format!("{kind}: ")),
                    "{}: {stderr}",
                    case.name
                );
            }
            _ => panic!("{}: a case has expected or error", case.name),
        }
    }
}

#[test]
fn resolve_reads_a_file_argument() {
    let dir = temp_dir("resolve");
    let path = dir.join("scenario.json");
    let scenario = json!({
        "stakes": "high",
        "policy": {"weighting": "linear"},
        "electorate": [{"agent": "risk", "authority": 0.9, "trust": 0.8}, {"agent": "compliance", "authority": "0.7", "trust": "0.5"}],
        "proposer": "risk",
        "proposer_confidence": 0.8,
        "responses": [{"agent": "compliance", "stance": "challenge", "confidence": 0.9}],
        "deadline_passed": false
    });
    std::fs::write(&path, scenario.to_string()).unwrap();
    let out = synod().arg("resolve").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    // E = 0.9·0.8·0.8 = 0.576, C = 0.7·0.9·0.5 = 0.315: E − C = 0.261 < 0.4 × 0.891.
    assert_eq!(got["status"], "escalated");
    assert_eq!(got["reason"], "contested");
    assert_eq!(got["tally"]["endorse"], "0.576");
    assert_eq!(got["tally"]["challenge"], "0.315");
    // The default, log-odds: risk's trust 0.8 counts as the cap 0.65, so its
    // factor is 0.9·(2·0.65)² = 1.521 and its 0.8 counts ln 4; compliance's
    // challenge at 0.9 is capped at −0.7·ln 4. E − C = 0.821·ln 4 < ln 9.
    let mut default = scenario.clone();
    default.as_object_mut().unwrap().remove("policy");
    std::fs::write(&path, default.to_string()).unwrap();
    let out = synod().arg("resolve").arg(&path).output().unwrap();
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["status"], "escalated");
    assert_eq!(got["tally"]["endorse"], "2.108553723261999");
    assert_eq!(got["tally"]["challenge"], "0.9704060527833");
    // Without the trust cap (2.304·ln 4 − 0.7·ln 4 ≥ ln 9) it approves.
    default["policy"] = json!({"trust_cap": "1"});
    std::fs::write(&path, default.to_string()).unwrap();
    let out = synod().arg("resolve").arg(&path).output().unwrap();
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["status"], "approved");
    assert_eq!(got["tally"]["endorse"], "3.194022208018176");
    let missing = synod()
        .arg("resolve")
        .arg(dir.join("nope.json"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resolve_refuses_malformed_json() {
    let out = run_with_stdin(&["resolve"], "{\"stakes\": ");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("malformed: "));
}

#[test]
fn audit_verify_passes_the_sample_and_names_a_tampered_entry() {
    let sample = repo().join("vectors/log/sample.jsonl");
    let out = synod()
        .args(["audit", "verify"])
        .arg(&sample)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("audit passed: 26 entries verified"),
        "{text}"
    );

    let out = synod()
        .args(["audit", "verify", "--json"])
        .arg(&sample)
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["entries"], 26);
    assert_eq!(summary["proposals"]["rejected"], 1);

    // Change the confidence of the first response in the log.
    let mut lines: Vec<String> = std::fs::read_to_string(&sample)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let idx = lines
        .iter()
        .position(|l| l.contains("\"type\":\"response\""))
        .unwrap();
    let mut line: Value = serde_json::from_str(&lines[idx]).unwrap();
    line["message"]["body"]["confidence"] = json!("0.99");
    lines[idx] = line.to_string();
    let out = run_with_stdin(&["audit", "verify", "-"], &lines.join("\n"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("entry {idx}: ")), "{stderr}");
    assert!(stderr.contains("bad_signature"), "{stderr}");
}

/// `synod audit verify --json` of `sample`, which must pass; its summary.
fn audit_summary(sample: &std::path::Path) -> Value {
    let out = synod()
        .args(["audit", "verify", "--json"])
        .arg(sample)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn audit_verify_re_derives_the_sealed_sample() {
    // PROTOCOL.md §18 through §10.3: commitments, the end of the commit
    // phase and the reveals are re-derived from the signed entries.
    let sample = repo().join("vectors/log/sealed.jsonl");
    let summary = audit_summary(&sample);
    assert_eq!(summary["proposals"]["approved"], 1);
    assert_eq!(summary["trust_updates"], 3);
    // An altered count of commitments no longer verifies.
    let text = std::fs::read_to_string(&sample).unwrap();
    let tampered = text.replace("\"committed\":3", "\"committed\":2");
    assert_ne!(tampered, text);
    let out = run_with_stdin(&["audit", "verify", "-"], &tampered);
    assert!(!out.status.success());
}

#[test]
fn audit_verify_re_derives_the_open_sample() {
    // PROTOCOL.md §19 through §10.3: clusters, the adopted answers and the
    // trust updates of each answer are re-derived from the signed entries.
    let sample = repo().join("vectors/log/open.jsonl");
    let summary = audit_summary(&sample);
    assert_eq!(summary["proposals"]["approved"], 1);
    assert_eq!(summary["proposals"]["approved_by_human"], 1);
    assert_eq!(summary["trust_updates"], 5);
    let text = std::fs::read_to_string(&sample).unwrap();
    let tampered = text.replace("\"agreement\":\"0.666666\"", "\"agreement\":\"0.7\"");
    assert_ne!(tampered, text);
    let out = run_with_stdin(&["audit", "verify", "-"], &tampered);
    assert!(!out.status.success());
}

#[test]
fn audit_verify_re_derives_the_belief_sample() {
    // PROTOCOL.md §15 through §10.3: pools, choices, a reviewer's option and
    // the quadratic trust updates are re-derived from the signed entries.
    let sample = repo().join("vectors/log/belief.jsonl");
    let summary = audit_summary(&sample);
    assert_eq!(summary["proposals"]["approved"], 1);
    assert_eq!(summary["proposals"]["approved_by_human"], 1);
    assert_eq!(summary["trust_updates"], 8);
    // A pooled probability altered in the export no longer verifies.
    let text = std::fs::read_to_string(&sample).unwrap();
    let mut tampered: Vec<String> = text.lines().map(String::from).collect();
    let at = tampered
        .iter()
        .position(|l| l.contains("\"pooled\""))
        .unwrap();
    let mut line: Value = serde_json::from_str(&tampered[at]).unwrap();
    line["effects"][0]["pool"]["pooled"]["acme"] = json!("0.999999");
    tampered[at] = line.to_string();
    let out = run_with_stdin(&["audit", "verify", "-"], &tampered.join("\n"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("re-derived"), "{stderr}");
}

#[test]
fn audit_verify_re_derives_the_stake_sample() {
    // PROTOCOL.md §20 through §10.3: stakes, the two-thirds rule, a
    // committee and round proposers are re-derived from the signed entries.
    let sample = repo().join("vectors/log/stake.jsonl");
    let summary = audit_summary(&sample);
    assert_eq!(summary["proposals"]["rejected"], 1);
    // The exactly-two-thirds proposal recorded as approved no longer
    // verifies: the rule says escalated.
    let text = std::fs::read_to_string(&sample).unwrap();
    let mut tampered: Vec<String> = text.lines().map(String::from).collect();
    let at = tampered
        .iter()
        .position(|l| l.contains("\"proposal_closed\"") && l.contains("\"endorse\":\"8\""))
        .unwrap();
    let forged = tampered[at].replace(
        "\"status\":\"escalated\",\"reason\":\"no_quorum\"",
        "\"status\":\"approved\",\"reason\":null",
    );
    assert_ne!(forged, tampered[at]);
    tampered[at] = forged;
    let out = run_with_stdin(&["audit", "verify", "-"], &tampered.join("\n"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn audit_verify_re_derives_the_hierarchy_sample() {
    // PROTOCOL.md §21 through §10.3: executive decisions, objections and
    // windows closing through the log are re-derived from the entries.
    let sample = repo().join("vectors/log/hierarchy.jsonl");
    let summary = audit_summary(&sample);
    assert_eq!(summary["proposals"]["rejected_by_human"], 1);
    // Claiming the overruled decision stood no longer verifies.
    let text = std::fs::read_to_string(&sample).unwrap();
    let mut tampered: Vec<String> = text.lines().map(String::from).collect();
    let at = tampered
        .iter()
        .position(|l| l.contains("\"cause\":\"objected\""))
        .unwrap();
    let forged = tampered[at].replace(
        "\"status\":\"escalated\",\"reason\":\"objected\"",
        "\"status\":\"approved\",\"reason\":null",
    );
    assert_ne!(forged, tampered[at]);
    tampered[at] = forged;
    let out = run_with_stdin(&["audit", "verify", "-"], &tampered.join("\n"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn keygen_writes_a_private_key_and_prints_its_did() {
    let dir = temp_dir("keygen");
    let out = synod()
        .arg("keygen")
        .env("SYNOD_CONFIG_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let did = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    let path = dir.join("keys/default.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = synod()
        .arg("keygen")
        .env("SYNOD_CONFIG_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "overwrote a key without --force"
    );
    let shown = synod()
        .arg("did")
        .env("SYNOD_CONFIG_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(shown.stdout).unwrap().trim(), did);

    let other = dir.join("other.json");
    let out = synod()
        .args(["keygen", "--out"])
        .arg(&other)
        .output()
        .unwrap();
    let other_did = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_ne!(other_did, did, "two keys came out the same");
    let shown = synod().args(["did", "--key"]).arg(&other).output().unwrap();
    assert_eq!(String::from_utf8(shown.stdout).unwrap().trim(), other_did);
    std::fs::remove_dir_all(&dir).unwrap();
}
