//! The signed envelope: `{"type", "body", "signer", "signature"}`.
//!
//! The signature is Ed25519 over the RFC 8785 (JCS) canonical bytes of the
//! envelope without its `signature` member. Those same bytes, hashed with
//! SHA-256, are a message's id. See `docs/PROTOCOL.md` §2.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use serde::de::DeserializeSeed as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::error::{ErrorKind, Rejection, reject};
use crate::identity::{AgentId, KeyCache, Keypair, NoKeyCache};
use crate::signature::{self, Equation};

/// Largest envelope accepted, in bytes of JSON as received.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Deepest nesting of arrays and objects accepted anywhere in a message.
pub const MAX_JSON_DEPTH: usize = 32;
/// Largest integer magnitude in a message: 2⁵³ − 1, so that every
/// implementation's JSON numbers (IEEE doubles in JCS) hold it exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A SHA-256 digest: a message id, a proposal id, an entry hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Parses 64 lowercase hex characters.
    pub fn from_hex(text: &str) -> Option<Digest> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            out[i] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Digest(out))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.to_hex()[..12])
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex characters"))
    }
}

/// The message types of the protocol. The wire name is the snake_case string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// An agent registers or updates itself.
    Registration,
    /// An agent proposes an action.
    Proposal,
    /// An agent in the electorate endorses, challenges or abstains.
    Response,
    /// An oracle or reviewer reports how a decided action turned out.
    Outcome,
    /// A human reviewer decides an escalated proposal.
    Decision,
    /// An admin creates the space, changes its configuration or grants
    /// authorities and roles.
    Configuration,
}

impl MessageType {
    fn parse(text: &str) -> Option<MessageType> {
        Some(match text {
            "registration" => MessageType::Registration,
            "proposal" => MessageType::Proposal,
            "response" => MessageType::Response,
            "outcome" => MessageType::Outcome,
            "decision" => MessageType::Decision,
            "configuration" => MessageType::Configuration,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Registration => "registration",
            MessageType::Proposal => "proposal",
            MessageType::Response => "response",
            MessageType::Outcome => "outcome",
            MessageType::Decision => "decision",
            MessageType::Configuration => "configuration",
        }
    }
}

/// A parsed envelope whose canonical signed bytes are computed. Parsing does
/// not check the signature: call [`SignedMessage::verify`].
#[derive(Clone)]
pub struct SignedMessage {
    kind: MessageType,
    body: Value,
    signer: AgentId,
    /// The signer's key, decoded once.
    signer_key: VerifyingKey,
    signature: [u8; 64],
    signed_bytes: Vec<u8>,
}

impl fmt::Debug for SignedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedMessage")
            .field("type", &self.kind)
            .field("signer", &self.signer)
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SignedMessage {
    fn eq(&self, other: &SignedMessage) -> bool {
        self.signed_bytes == other.signed_bytes && self.signature == other.signature
    }
}

impl Eq for SignedMessage {}

impl SignedMessage {
    /// Parses an envelope from JSON bytes as received from outside.
    pub fn parse(bytes: &[u8]) -> Result<SignedMessage, Rejection> {
        SignedMessage::parse_cached(bytes, &NoKeyCache)
    }

    /// [`SignedMessage::parse`], taking decoded signer keys from `keys`.
    pub fn parse_cached(bytes: &[u8], keys: &dyn KeyCache) -> Result<SignedMessage, Rejection> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return reject(
                ErrorKind::TooLarge,
                format!(
                    "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                    bytes.len()
                ),
            );
        }
        SignedMessage::from_value_cached(parse_strict(bytes)?, keys)
    }

    /// Builds an envelope from an already parsed JSON value.
    pub fn from_value(value: Value) -> Result<SignedMessage, Rejection> {
        SignedMessage::from_value_cached(value, &NoKeyCache)
    }

    /// Rebuilds a message from its signed bytes and signature, as a store
    /// keeps it. The bytes must be exactly the canonical form they parse to.
    pub fn from_signed_bytes(
        signed: &[u8],
        signature: &[u8; 64],
    ) -> Result<SignedMessage, Rejection> {
        let mut value = parse_strict(signed)?;
        let Some(object) = value.as_object_mut() else {
            return reject(ErrorKind::Malformed, "signed bytes must be a JSON object");
        };
        object.insert(
            "signature".into(),
            Value::String(URL_SAFE_NO_PAD.encode(signature)),
        );
        let message = SignedMessage::from_value(value)?;
        if message.signed_bytes != signed {
            return reject(
                ErrorKind::Malformed,
                "signed bytes are not in canonical form",
            );
        }
        Ok(message)
    }

    fn from_value_cached(value: Value, keys: &dyn KeyCache) -> Result<SignedMessage, Rejection> {
        let Value::Object(mut object) = value else {
            return reject(ErrorKind::Malformed, "a message must be a JSON object");
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "type" | "body" | "signer" | "signature") {
                return reject(
                    ErrorKind::Malformed,
                    format!("unknown envelope field {key:?}"),
                );
            }
        }
        let field = |object: &mut Map<String, Value>, name: &str| {
            object.remove(name).ok_or_else(|| {
                Rejection::new(
                    ErrorKind::Malformed,
                    format!("missing envelope field {name:?}"),
                )
            })
        };
        let kind = field(&mut object, "type")?;
        let body = field(&mut object, "body")?;
        let signer = field(&mut object, "signer")?;
        let signature = field(&mut object, "signature")?;

        let kind = kind
            .as_str()
            .and_then(MessageType::parse)
            .ok_or_else(|| Rejection::new(ErrorKind::Malformed, "unknown message type"))?;
        let (signer, signer_key) = match signer.as_str() {
            Some(text) => match keys.get(text) {
                Some(key) => (AgentId::cached(text), key),
                None => {
                    let (id, key) = AgentId::parse_with_key(text).map_err(|e| {
                        Rejection::new(ErrorKind::BadSignature, format!("signer: {e}"))
                    })?;
                    keys.put(text, key);
                    (id, key)
                }
            },
            None => return reject(ErrorKind::Malformed, "signer must be a string"),
        };
        let signature = match signature.as_str() {
            Some(text) => decode_signature(text)?,
            None => return reject(ErrorKind::Malformed, "signature must be a string"),
        };
        if !body.is_object() {
            return reject(ErrorKind::Malformed, "body must be a JSON object");
        }
        check_json(&body, 0)?;
        let signed_bytes = signing_bytes(kind, &body, &signer);
        Ok(SignedMessage {
            kind,
            body,
            signer,
            signer_key,
            signature,
            signed_bytes,
        })
    }

    /// Signs `body` as `kind` with `key`. The body must be a JSON object;
    /// numbers in it must be integers within ±(2⁵³ − 1) or finite floats.
    pub fn sign(kind: MessageType, body: Value, key: &Keypair) -> SignedMessage {
        assert!(body.is_object(), "a message body must be an object");
        let signer = key.id().clone();
        let signed_bytes = signing_bytes(kind, &body, &signer);
        let signature = key.sign(&signed_bytes).to_bytes();
        SignedMessage {
            kind,
            body,
            signer,
            signer_key: key.verifying_key(),
            signature,
            signed_bytes,
        }
    }

    /// Checks the signature (docs/PROTOCOL.md §2: strict encodings, the
    /// cofactored equation) and returns the message as [`Verified`].
    pub fn verify(self) -> Result<Verified, Rejection> {
        self.prepare()?.verify()
    }

    /// Checks the signature without consuming the message.
    pub fn check_signature(&self) -> Result<(), Rejection> {
        match self.equation() {
            Some(equation) if equation.holds() => Ok(()),
            _ => Err(self.bad_signature()),
        }
    }

    /// Decodes the signature and computes what its equation needs, without
    /// checking the equation: the cheap part of verifying, which can run
    /// anywhere, before the expensive part is done for many messages at once
    /// by [`verify_batch`]. Fails when the signature is malformed.
    pub fn prepare(self) -> Result<Prepared, Rejection> {
        match self.equation() {
            Some(equation) => Ok(Prepared {
                message: self,
                equation,
            }),
            None => Err(self.bad_signature()),
        }
    }

    fn equation(&self) -> Option<Equation> {
        Equation::new(
            self.signer_key.to_edwards(),
            self.signer_key.to_bytes(),
            &self.signature,
            &self.signed_bytes,
        )
    }

    fn bad_signature(&self) -> Rejection {
        Rejection::new(
            ErrorKind::BadSignature,
            format!("signature does not verify for {}", self.signer),
        )
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        self.kind
    }

    /// The body object.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The signer's agent id.
    pub fn signer(&self) -> &AgentId {
        &self.signer
    }

    /// The raw 64-byte signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The canonical bytes that were signed.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed_bytes
    }

    /// The message id: SHA-256 of the signed bytes. For a proposal this is
    /// the proposal id.
    pub fn id(&self) -> Digest {
        Digest::of(&self.signed_bytes)
    }

    /// The whole envelope as a JSON value, signature included.
    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("type".into(), Value::String(self.kind.as_str().into()));
        object.insert("body".into(), self.body.clone());
        object.insert("signer".into(), Value::String(self.signer.to_string()));
        object.insert(
            "signature".into(),
            Value::String(URL_SAFE_NO_PAD.encode(self.signature)),
        );
        Value::Object(object)
    }

    /// The canonical (JCS) bytes of the whole envelope, signature included:
    /// the form in which the node stores and exports a message.
    pub fn canonical_envelope(&self) -> Vec<u8> {
        canonicalize(&self.to_value())
    }
}

/// A message whose signature is decoded but whose equation is not checked
/// yet: made by [`SignedMessage::prepare`], turned into [`Verified`] by
/// [`Prepared::verify`] or, many at once, by [`verify_batch`].
#[derive(Clone)]
pub struct Prepared {
    message: SignedMessage,
    equation: Equation,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Prepared").field(&self.message).finish()
    }
}

impl Prepared {
    /// Checks this one signature's equation.
    pub fn verify(self) -> Result<Verified, Rejection> {
        if self.equation.holds() {
            Ok(Verified(self.message))
        } else {
            Err(self.message.bad_signature())
        }
    }
}

impl std::ops::Deref for Prepared {
    type Target = SignedMessage;
    fn deref(&self) -> &SignedMessage {
        &self.message
    }
}

/// Verifies many prepared messages at once, answering for each exactly what
/// [`Prepared::verify`] would. All their equations are checked as one
/// (docs/PROTOCOL.md §2), at about half the cost per signature for batches
/// of 16 and more; when that fails, each is checked alone to find which.
pub fn verify_batch(batch: Vec<Prepared>) -> Vec<Result<Verified, Rejection>> {
    let equations: Vec<&Equation> = batch.iter().map(|p| &p.equation).collect();
    if batch.len() > 1 && signature::batch_holds(&equations) {
        batch.into_iter().map(|p| Ok(Verified(p.message))).collect()
    } else {
        batch.into_iter().map(Prepared::verify).collect()
    }
}

/// A message whose signature has been checked. Only [`SignedMessage::verify`],
/// [`Prepared::verify`], [`verify_batch`], [`Verified::sign`] (a message one
/// signed oneself) and [`Verified::from_trusted_storage`] (the node's own
/// durable log) make one, so the state machine never applies an unchecked
/// message by accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified(SignedMessage);

impl Verified {
    /// Signs a body; a message one signed oneself needs no check.
    pub fn sign(kind: MessageType, body: Value, key: &Keypair) -> Verified {
        Verified(SignedMessage::sign(kind, body, key))
    }

    /// Wraps a message read back from the node's own durable log, which only
    /// ever holds messages that were verified before they were appended.
    pub fn from_trusted_storage(message: SignedMessage) -> Verified {
        Verified(message)
    }

    /// The message.
    pub fn into_inner(self) -> SignedMessage {
        self.0
    }
}

impl std::ops::Deref for Verified {
    type Target = SignedMessage;

    fn deref(&self) -> &SignedMessage {
        &self.0
    }
}

fn decode_signature(text: &str) -> Result<[u8; 64], Rejection> {
    // 64 bytes are 86 characters of unpadded base64url.
    if text.len() != 86 {
        return reject(
            ErrorKind::Malformed,
            "signature must be 64 bytes of unpadded base64url (86 characters)",
        );
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Rejection::new(ErrorKind::Malformed, "signature is not base64url"))?;
    bytes
        .try_into()
        .map_err(|_| Rejection::new(ErrorKind::Malformed, "signature must be 64 bytes"))
}

fn signing_bytes(kind: MessageType, body: &Value, signer: &AgentId) -> Vec<u8> {
    // The canonicalizer sorts members itself; borrowing the body avoids
    // copying it.
    #[derive(Serialize)]
    struct Unsigned<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        body: &'a Value,
        signer: &'a str,
    }
    serde_json_canonicalizer::to_vec(&Unsigned {
        kind: kind.as_str(),
        body,
        signer: signer.as_str(),
    })
    .expect("a message always canonicalizes")
}

/// RFC 8785 canonical bytes of a JSON value.
pub fn canonicalize(value: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).expect("a serde_json::Value always canonicalizes")
}

/// Refuses nesting deeper than [`MAX_JSON_DEPTH`] and numbers of magnitude
/// 2⁵³ or more, which not every implementation's JSON reads exactly.
fn check_json(value: &Value, depth: usize) -> Result<(), Rejection> {
    if depth > MAX_JSON_DEPTH {
        return reject(
            ErrorKind::Malformed,
            format!("JSON nested deeper than {MAX_JSON_DEPTH} levels"),
        );
    }
    match value {
        Value::Number(n) => {
            let in_range = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u <= MAX_SAFE_INTEGER,
                (None, Some(i)) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
                // A payload may carry floats; only their size is checked here,
                // nothing is decided with them.
                (None, None) => float_in_range(n),
            };
            if !in_range {
                return reject(
                    ErrorKind::Malformed,
                    format!("number {n} is beyond ±(2^53 - 1)"),
                );
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|v| check_json(v, depth + 1)),
        Value::Object(map) => map.values().try_for_each(|v| check_json(v, depth + 1)),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Whether a non-integer JSON number has magnitude below 2⁵³.
// tidy: float-ok
fn float_in_range(n: &serde_json::Number) -> bool {
    let bound = MAX_SAFE_INTEGER as f64; // tidy: float-ok
    n.as_f64().is_some_and(|x| x.abs() < bound) // tidy: float-ok
}

/// Parses JSON text from outside strictly: an object with the same key twice
/// is refused (parsers disagree on which one wins), and nesting is bounded
/// while parsing rather than after.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, Rejection> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed { depth: 0 }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Rejection::new(ErrorKind::Malformed, format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// `deserialize_with` helper: any JSON value, by the rules of
/// [`parse_strict`].
pub fn strict_json<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    StrictSeed { depth: 0 }.deserialize(d)
}

/// `deserialize_with` helper: a JSON value parsed by the rules of
/// [`parse_strict`], `null` read as `None`.
pub fn strict_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    let value = StrictSeed { depth: 0 }.deserialize(d)?;
    Ok(match value {
        Value::Null => None,
        other => Some(other),
    })
}

struct StrictSeed {
    depth: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.depth > MAX_JSON_DEPTH + 1 {
            return Err(serde::de::Error::custom(format!(
                "JSON nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    // Payload floats are kept as JSON numbers, never computed with.
    // tidy: float-ok
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        let number = serde_json::Number::from_f64(v); // tidy: float-ok
        number
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictSeed {
            depth: self.depth + 1,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key {key:?} in an object"
                )));
            }
            let value = map.next_value_seed(StrictSeed {
                depth: self.depth + 1,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Keypair {
        Keypair::from_seed(&[1u8; 32])
    }

    #[test]
    fn signs_and_verifies_round_trip() {
        let msg = SignedMessage::sign(MessageType::Response, json!({"b": 1, "a": "x"}), &key());
        msg.clone().verify().unwrap();
        let text = serde_json::to_vec(&msg.to_value()).unwrap();
        let parsed = SignedMessage::parse(&text).unwrap();
        parsed.clone().verify().unwrap();
        assert_eq!(parsed, msg);
        assert_eq!(parsed.id(), msg.id());
    }

    #[test]
    fn canonical_bytes_sort_keys() {
        let msg = SignedMessage::sign(
            MessageType::Outcome,
            json!({"b": 1, "a": [true, null]}),
            &key(),
        );
        let text = String::from_utf8(msg.signed_bytes().to_vec()).unwrap();
        assert!(
            text.starts_with(r#"{"body":{"a":[true,null],"b":1},"signer":"did:key:z6Mk"#),
            "{text}"
        );
        assert!(text.ends_with(r#","type":"outcome"}"#), "{text}");
    }

    #[test]
    fn tampered_body_fails_verification() {
        let msg = SignedMessage::sign(MessageType::Response, json!({"x": 1}), &key());
        let mut value = msg.to_value();
        value["body"]["x"] = json!(2);
        let parsed = SignedMessage::from_value(value).unwrap();
        assert_eq!(parsed.verify().unwrap_err().kind, ErrorKind::BadSignature);
    }

    #[test]
    fn envelope_shape_is_enforced() {
        let msg = SignedMessage::sign(MessageType::Response, json!({"x": 1}), &key());
        let good = msg.to_value();
        let cases: Vec<(Value, ErrorKind)> = vec![
            (json!([]), ErrorKind::Malformed),
            (
                {
                    let mut v = good.clone();
                    v["extra"] = json!(1);
                    v
                },
                ErrorKind::Malformed,
            ),
            (
                {
                    let mut v = good.clone();
                    v.as_object_mut().unwrap().remove("signer");
                    v
                },
                ErrorKind::Malformed,
            ),
            (
                {
                    let mut v = good.clone();
                    v["type"] = json!("vote");
                    v
                },
                ErrorKind::Malformed,
            ),
            (
                {
                    let mut v = good.clone();
                    v["body"] = json!([1]);
                    v
                },
                ErrorKind::Malformed,
            ),
            (
                {
                    let mut v = good.clone();
                    v["signer"] = json!("did:key:zzz");
                    v
                },
                ErrorKind::BadSignature,
            ),
            (
                {
                    let mut v = good.clone();
                    v["signature"] = json!("AAAA");
                    v
                },
                ErrorKind::Malformed,
            ),
            (
                {
                    let mut v = good.clone();
                    v["body"]["n"] = json!(1u64 << 53);
                    v
                },
                ErrorKind::Malformed,
            ),
        ];
        for (value, kind) in cases {
            let err = SignedMessage::from_value(value.clone()).unwrap_err();
            assert_eq!(err.kind, kind, "{value}");
        }
    }

    #[test]
    fn oversized_and_deep_messages_are_refused() {
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            SignedMessage::parse(&big).unwrap_err().kind,
            ErrorKind::TooLarge
        );
        let mut deep = json!(1);
        for _ in 0..=MAX_JSON_DEPTH {
            deep = json!([deep]);
        }
        let msg = SignedMessage::sign(MessageType::Response, json!({"d": deep}), &key());
        assert_eq!(
            SignedMessage::from_value(msg.to_value()).unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    #[test]
    fn strict_parsing_refuses_duplicate_keys_and_huge_numbers() {
        let msg = SignedMessage::sign(MessageType::Response, json!({"x": 1}), &key());
        let text = serde_json::to_string(&msg.to_value()).unwrap();
        // The same key twice, at the top and inside the body.
        let twice = text.replacen("{\"body\"", "{\"type\":\"response\",\"body\"", 1);
        assert_eq!(
            SignedMessage::parse(twice.as_bytes()).unwrap_err().kind,
            ErrorKind::Malformed
        );
        let inner = text.replacen("{\"x\":1}", "{\"x\":1,\"x\":2}", 1);
        let err = SignedMessage::parse(inner.as_bytes()).unwrap_err();
        assert!(err.message.contains("duplicate key"), "{}", err.message);
        // serde_json's private raw-value key is an ordinary key here.
        let raw = text.replacen(
            "{\"x\":1}",
            "{\"$serde_json::private::RawValue\":\"[1]\"}",
            1,
        );
        let parsed = SignedMessage::parse(raw.as_bytes()).unwrap();
        assert!(
            parsed
                .body()
                .get("$serde_json::private::RawValue")
                .is_some()
        );
        for number in [
            "18446744073709551616",
            "9007199254740992",
            "1e300",
            "-9007199254740992",
        ] {
            let huge = text.replacen("{\"x\":1}", &format!("{{\"x\":{number}}}"), 1);
            assert_eq!(
                SignedMessage::parse(huge.as_bytes()).unwrap_err().kind,
                ErrorKind::Malformed,
                "{number}"
            );
        }
        let fine = text.replacen("{\"x\":1}", "{\"x\":9007199254740991}", 1);
        assert!(SignedMessage::parse(fine.as_bytes()).is_ok());
        assert!(SignedMessage::parse(b"{} trailing").is_err());
    }

    #[test]
    fn digest_hex_round_trips() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()), None);
    }
}
