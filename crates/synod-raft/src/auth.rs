//! How the nodes of a cluster know each other: a shared secret, and an
//! HMAC-SHA-256 (RFC 2104) over every request between them and over every
//! answer.
//!
//! What it protects: only a holder of the secret can send a node Raft
//! messages, forwarded writes or membership changes, and a request or answer
//! altered on the way fails its check. The secret itself never crosses the
//! network. What it does not protect: confidentiality (the traffic is the
//! space's log, which `/v1/log` publishes anyway), and replay of a captured
//! request. Raft tolerates duplicated delivery by design, and a replayed
//! forwarded write is refused by the core as a duplicate; a membership
//! change carries its time and is refused outside [`MAX_ADMIN_AGE_MS`] of
//! the receiving node's clock. A peer's body is read (up to its limit)
//! before its MAC can be checked, so the peer routes should still sit on a
//! network only the cluster reaches.

use sha2::{Digest as _, Sha256};

/// Bytes in a cluster secret.
pub const SECRET_BYTES: usize = 32;
/// A membership change older or newer than this, by the receiving node's
/// clock, is refused: the window in which a captured one could be replayed.
pub const MAX_ADMIN_AGE_MS: u64 = 5 * 60 * 1000;
/// The request header: `<time_ms>.<64 hex MAC>`.
pub const REQUEST_HEADER: &str = "x-synod-peer";
/// The answer header: `<64 hex MAC>`.
pub const REPLY_HEADER: &str = "x-synod-peer-reply";

const BLOCK: usize = 64;

/// The secret shared by every node of a cluster and its operators'
/// `synod cluster` commands.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret([u8; SECRET_BYTES]);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(…)")
    }
}

/// A cluster secret that did not read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("reading the cluster secret {path}: {why}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        why: String,
    },
    /// The text is not 64 hex characters.
    #[error("a cluster secret is {} hex characters (make one with `synod cluster secret`)", SECRET_BYTES * 2)]
    Malformed,
}

/// What a MAC header said, when it does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No header, or not of the form `<time>.<mac>`.
    #[error("the request carries no well-formed {REQUEST_HEADER} header")]
    Missing,
    /// The MAC does not match: another secret, or an altered request.
    #[error("the request's MAC does not check out (another cluster secret, or altered on the way)")]
    Mismatch,
    /// The request's time is too far from this node's clock.
    #[error(
        "the request was made {age_ms} ms from this node's clock; at most {MAX_ADMIN_AGE_MS} are accepted"
    )]
    Stale {
        /// How far off it is.
        age_ms: u64,
    },
}

impl ClusterSecret {
    /// A secret from its bytes.
    pub fn from_bytes(bytes: [u8; SECRET_BYTES]) -> ClusterSecret {
        ClusterSecret(bytes)
    }

    /// Parses 64 hex characters (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<ClusterSecret, SecretError> {
        unhex32(text.trim())
            .map(ClusterSecret)
            .ok_or(SecretError::Malformed)
    }

    /// Reads a secret file written by `synod cluster secret`.
    pub fn read(path: &std::path::Path) -> Result<ClusterSecret, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::Io {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        ClusterSecret::parse(&text)
    }

    /// The secret as 64 lowercase hex characters, as a secret file holds it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// HMAC-SHA-256 of the concatenation of `parts` under this secret.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(&self.0, parts)
    }

    /// The MAC of a request: method, path with query, the time it was made
    /// and the SHA-256 of its body, with a label that keeps it from ever
    /// equalling an answer's MAC.
    pub fn request_mac(&self, method: &str, path: &str, time_ms: u64, body: &[u8]) -> [u8; 32] {
        let body_hash: [u8; 32] = Sha256::digest(body).into();
        self.mac(&[
            b"synod/peer-request/v1\0",
            method.as_bytes(),
            b"\0",
            path.as_bytes(),
            b"\0",
            &time_ms.to_be_bytes(),
            &body_hash,
        ])
    }

    /// The MAC of an answer to the request whose MAC was `request`: the
    /// status and the SHA-256 of the body, bound to that request so that an
    /// answer cannot be moved onto another.
    pub fn reply_mac(&self, request: &[u8; 32], status: u16, body: &[u8]) -> [u8; 32] {
        let body_hash: [u8; 32] = Sha256::digest(body).into();
        self.mac(&[
            b"synod/peer-reply/v1\0",
            request,
            &status.to_be_bytes(),
            &body_hash,
        ])
    }

    /// The request header's value for a request made at `time_ms`.
    pub fn request_header(&self, method: &str, path: &str, time_ms: u64, body: &[u8]) -> String {
        format!(
            "{time_ms}.{}",
            hex(&self.request_mac(method, path, time_ms, body))
        )
    }

    /// Checks a request header; returns the request's time and MAC (which
    /// the answer's MAC is bound to).
    pub fn check_request(
        &self,
        header: Option<&str>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u64, [u8; 32]), AuthError> {
        let (time, mac) = header
            .and_then(|h| h.split_once('.'))
            .ok_or(AuthError::Missing)?;
        let time: u64 = time.parse().map_err(|_| AuthError::Missing)?;
        let mac = unhex32(mac).ok_or(AuthError::Missing)?;
        let expected = self.request_mac(method, path, time, body);
        if !equal(&mac, &expected) {
            return Err(AuthError::Mismatch);
        }
        Ok((time, mac))
    }

    /// Checks an answer's header against the request's MAC.
    pub fn check_reply(
        &self,
        header: Option<&str>,
        request: &[u8; 32],
        status: u16,
        body: &[u8],
    ) -> Result<(), AuthError> {
        let mac = header.and_then(unhex32).ok_or(AuthError::Missing)?;
        if !equal(&mac, &self.reply_mac(request, status, body)) {
            return Err(AuthError::Mismatch);
        }
        Ok(())
    }
}

/// Refuses a request made more than [`MAX_ADMIN_AGE_MS`] from `now_ms`.
pub fn check_fresh(time_ms: u64, now_ms: u64) -> Result<(), AuthError> {
    let age_ms = time_ms.abs_diff(now_ms);
    if age_ms > MAX_ADMIN_AGE_MS {
        return Err(AuthError::Stale { age_ms });
    }
    Ok(())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly 64 hex digits (either case) as 32 bytes.
fn unhex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let value = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
        out[i] = value(pair[0])? << 4 | value(pair[1])?;
    }
    Some(out)
}

/// Compares two MACs in time independent of where they differ.
fn equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA-256 (RFC 2104) of the concatenation of `parts`. Written out
/// rather than taken from a crate: it is the whole of what is needed, and the
/// RFC 4231 vectors below pin it.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        let hashed: [u8; 32] = Sha256::digest(key).into();
        block[..32].copy_from_slice(&hashed);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let inner: [u8; 32] = inner.finalize().into();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2 and 6 of RFC 4231 (short key, short text, key
        // longer than a block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex(&hmac_sha256(key, &[data])), expected);
            // Split input hashes the same as whole input.
            let (a, b) = data.split_at(3);
            assert_eq!(hex(&hmac_sha256(key, &[a, b])), expected);
        }
    }

    #[test]
    fn a_request_checks_only_unaltered_and_under_the_same_secret() {
        let secret = ClusterSecret::from_bytes([7; 32]);
        let header = secret.request_header("POST", "/raft/v1/vote", 1_000, b"body");
        let (time, mac) = secret
            .check_request(Some(&header), "POST", "/raft/v1/vote", b"body")
            .unwrap();
        assert_eq!(time, 1_000);
        for (method, path, body) in [
            ("GET", "/raft/v1/vote", &b"body"[..]),
            ("POST", "/raft/v1/append", b"body"),
            ("POST", "/raft/v1/vote", b"bodY"),
        ] {
            assert_eq!(
                secret.check_request(Some(&header), method, path, body),
                Err(AuthError::Mismatch)
            );
        }
        let other = ClusterSecret::from_bytes([8; 32]);
        assert_eq!(
            other.check_request(Some(&header), "POST", "/raft/v1/vote", b"body"),
            Err(AuthError::Mismatch)
        );
        // The time is covered too.
        let moved = header.replacen("1000", "1001", 1);
        assert_eq!(
            secret.check_request(Some(&moved), "POST", "/raft/v1/vote", b"body"),
            Err(AuthError::Mismatch)
        );
        for bad in [None, Some("x"), Some("1.zz"), Some("1.00")] {
            assert_eq!(
                secret.check_request(bad, "POST", "/raft/v1/vote", b"body"),
                Err(AuthError::Missing)
            );
        }
        let reply = hex(&secret.reply_mac(&mac, 200, b"ok"));
        assert_eq!(secret.check_reply(Some(&reply), &mac, 200, b"ok"), Ok(()));
        assert_eq!(
            secret.check_reply(Some(&reply), &mac, 500, b"ok"),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            secret.check_reply(Some(&reply), &[0; 32], 200, b"ok"),
            Err(AuthError::Mismatch)
        );
    }

    #[test]
    fn secrets_parse_strictly_and_round_trip() {
        let secret = ClusterSecret::from_bytes([0xab; 32]);
        assert_eq!(
            ClusterSecret::parse(&format!(" {}\n", secret.to_hex())).unwrap(),
            secret
        );
        for bad in [
            "",
            "ab",
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(66),
            &format!("+a{}", "a".repeat(62)),
        ] {
            assert!(ClusterSecret::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{secret:?}"), "ClusterSecret(…)");
    }

    #[test]
    fn freshness_is_a_window_around_now() {
        assert!(check_fresh(10_000_000, 10_000_000 + MAX_ADMIN_AGE_MS).is_ok());
        assert!(check_fresh(10_000_000 + MAX_ADMIN_AGE_MS, 10_000_000).is_ok());
        assert!(check_fresh(10_000_000, 10_000_001 + MAX_ADMIN_AGE_MS).is_err());
    }
}
