//! Agent identity: Ed25519 keys named by `did:key`.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Multicodec prefix of an Ed25519 public key (0xed, varint-encoded).
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];
/// The scheme and multibase prefix (`z` = base58btc) of every agent id.
const DID_KEY_PREFIX: &str = "did:key:z";
/// Longest string that can be a did:key for Ed25519; longer input is refused
/// before decoding.
pub const MAX_DID_CHARS: usize = 64;

/// Why a string is not an agent id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    /// Not of the form `did:key:z…` with an Ed25519 multicodec key.
    #[error("not an Ed25519 did:key: {0}")]
    Format(String),
    /// The 32 bytes are not an acceptable Ed25519 key: not a canonically
    /// encoded point, or of small order.
    #[error("did:key holds an invalid Ed25519 public key")]
    BadKey,
}

/// An agent id: the `did:key` of its Ed25519 public key. Construction checks
/// that the key decodes, so holding an `AgentId` means holding a usable key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId {
    did: String,
}

impl AgentId {
    /// The id of a public key.
    pub fn from_key(key: &VerifyingKey) -> AgentId {
        let mut bytes = Vec::with_capacity(34);
        bytes.extend_from_slice(&ED25519_MULTICODEC);
        bytes.extend_from_slice(key.as_bytes());
        AgentId {
            did: format!("{DID_KEY_PREFIX}{}", bs58::encode(bytes).into_string()),
        }
    }

    /// Parses and checks a did:key; only the canonical encoding is accepted.
    pub fn parse(text: &str) -> Result<AgentId, DidError> {
        Self::parse_with_key(text).map(|(id, _)| id)
    }

    /// Parses a did:key, returning the id and its decoded key (decoding the
    /// key is most of the cost; callers that verify keep it).
    pub fn parse_with_key(text: &str) -> Result<(AgentId, VerifyingKey), DidError> {
        let key = Self::parse_key(text)?;
        Ok((
            AgentId {
                did: text.to_string(),
            },
            key,
        ))
    }

    /// Parses a did:key into its public key.
    pub fn parse_key(text: &str) -> Result<VerifyingKey, DidError> {
        let bad = || DidError::Format(text.chars().take(MAX_DID_CHARS).collect());
        if text.len() > MAX_DID_CHARS {
            return Err(bad());
        }
        let encoded = text.strip_prefix(DID_KEY_PREFIX).ok_or_else(bad)?;
        let bytes = bs58::decode(encoded).into_vec().map_err(|_| bad())?;
        if bytes.len() != 34 || bytes[..2] != ED25519_MULTICODEC {
            return Err(bad());
        }
        let key_bytes: [u8; 32] = bytes[2..].try_into().map_err(|_| bad())?;
        // The text is the only encoding of these bytes: base58 is one-to-one
        // on byte strings without leading zeros, and these start with 0xed.
        // So ids compare correctly as strings.
        // Only keys that can sign under the rule of docs/PROTOCOL.md §2:
        // canonical and not of small order.
        let point = crate::signature::check_key(&key_bytes).map_err(|_| DidError::BadKey)?;
        Ok(VerifyingKey::from(point))
    }

    /// An id whose text a [`KeyCache`] vouched for: it decoded it before.
    pub(crate) fn cached(did: &str) -> AgentId {
        AgentId {
            did: did.to_string(),
        }
    }

    /// The public key this id names.
    pub fn key(&self) -> VerifyingKey {
        Self::parse_key(&self.did).expect("AgentId holds a checked did:key")
    }

    /// The did string.
    pub fn as_str(&self) -> &str {
        &self.did
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.did)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", self.did)
    }
}

impl Serialize for AgentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.did)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AgentId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        AgentId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Keys already decoded, by did. Decoding a key (a point decompression) is a
/// good part of checking a signature; a node that hears from the same agents
/// again and again keeps them here. Implementations bound their size.
pub trait KeyCache {
    /// The decoded key of `did`, if cached. It must be the key that decoding
    /// exactly this text gave.
    fn get(&self, did: &str) -> Option<VerifyingKey>;
    /// Remembers the decoded key of `did`.
    fn put(&self, did: &str, key: VerifyingKey);
}

/// A cache that keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeyCache;

impl KeyCache for NoKeyCache {
    fn get(&self, _did: &str) -> Option<VerifyingKey> {
        None
    }

    fn put(&self, _did: &str, _key: VerifyingKey) {}
}

/// An agent's private key. The seed is supplied by the caller: the core draws
/// no randomness of its own.
pub struct Keypair {
    signing: SigningKey,
    id: AgentId,
}

impl Keypair {
    /// The key pair of a 32-byte seed (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        let signing = SigningKey::from_bytes(seed);
        let id = AgentId::from_key(&signing.verifying_key());
        Keypair { signing, id }
    }

    /// The agent id of this key.
    pub fn id(&self) -> &AgentId {
        &self.id
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The 32-byte seed, for writing a key file.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// Ed25519 signature of `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> Signature {
        self.signing.sign(bytes)
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_round_trips_and_starts_with_z6mk() {
        let pair = Keypair::from_seed(&[7u8; 32]);
        let did = pair.id().as_str().to_string();
        assert!(did.starts_with("did:key:z6Mk"), "{did}");
        assert_eq!(AgentId::parse(&did).unwrap(), *pair.id());
        assert_eq!(pair.id().key(), pair.signing.verifying_key());
    }

    #[test]
    fn did_refuses_other_forms() {
        let did = Keypair::from_seed(&[7u8; 32]).id().as_str().to_string();
        for bad in [
            "",
            "did:key:",
            "did:web:example.com",
            &did[..did.len() - 1],
            &format!("{did}1"),
            &did.replace("did:key:z", "did:key:f"),
            "did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc",
        ] {
            assert!(AgentId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
