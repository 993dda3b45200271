//! Proof-of-work admission (`docs/PROTOCOL.md` §16): a proposal from an
//! agent whose trust in the proposal's domain is below the space's
//! `admission_trust_below` carries a hashcash-style `stamp`, a nonce that
//! makes a domain-separated hash of the proposal's content start with
//! `admission_difficulty` zero bits.
//!
//! The hash covers the proposal's id as it would be without the stamp (its
//! signer and whole body, `created_at` included), so a stamp found for one
//! proposal is worth nothing on any other, or for any other signer.

use serde_json::Value;

use crate::identity::AgentId;
use crate::wire::{Digest, MessageType, canonicalize};

/// Domain separation of the stamp hash.
pub const STAMP_DOMAIN: &[u8] = b"synod/stamp/v1";
/// Largest nonce: a JSON integer every implementation reads exactly (§2.4).
pub const MAX_STAMP_NONCE: u64 = (1 << 53) - 1;
/// Largest `admission_difficulty` a space may set: 2⁴⁰ hashes on average is
/// already hours of one core.
pub const MAX_ADMISSION_DIFFICULTY: u32 = 40;

/// The digest a stamp is bound to: `SHA-256(JCS({"body": body without
/// "stamp", "signer": signer, "type": "proposal"}))`, the proposal's id as it
/// would be without its stamp.
pub fn stamp_base(signer: &AgentId, body: &Value) -> Digest {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        object.remove("stamp");
    }
    let unstamped = serde_json::json!({
        "body": body,
        "signer": signer,
        "type": MessageType::Proposal.as_str(),
    });
    Digest::of(&canonicalize(&unstamped))
}

/// `SHA-256("synod/stamp/v1" ‖ base ‖ be64(nonce))`.
pub fn stamp_hash(base: &Digest, nonce: u64) -> Digest {
    let mut bytes = Vec::with_capacity(STAMP_DOMAIN.len() + 32 + 8);
    bytes.extend_from_slice(STAMP_DOMAIN);
    bytes.extend_from_slice(&base.0);
    bytes.extend_from_slice(&nonce.to_be_bytes());
    Digest::of(&bytes)
}

/// The number of leading zero bits of a digest.
pub fn leading_zero_bits(digest: &Digest) -> u32 {
    let mut bits = 0;
    for byte in digest.0 {
        bits += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    bits
}

/// Whether `nonce` is a stamp of `difficulty` bits for `base`.
pub fn meets(base: &Digest, nonce: u64, difficulty: u32) -> bool {
    nonce <= MAX_STAMP_NONCE && leading_zero_bits(&stamp_hash(base, nonce)) >= difficulty
}

/// The first nonce from 0 that is a stamp of `difficulty` bits for `base`:
/// on average 2^difficulty hashes. `None` only if no nonce up to
/// [`MAX_STAMP_NONCE`] is one, which for a difficulty the protocol allows
/// happens with probability below e^(−2¹³).
pub fn mint(base: &Digest, difficulty: u32) -> Option<u64> {
    // The domain and base are the same for every nonce: hash them once.
    use sha2::{Digest as _, Sha256};
    let mut prefix = Sha256::new();
    prefix.update(STAMP_DOMAIN);
    prefix.update(base.0);
    (0..=MAX_STAMP_NONCE).find(|nonce| {
        let mut h = prefix.clone();
        h.update(nonce.to_be_bytes());
        leading_zero_bits(&Digest(h.finalize().into())) >= difficulty
    })
}

/// Adds a stamp of `difficulty` bits to a proposal `body` that `signer` is
/// about to sign (its `space` and `created_at` already in place: the stamp
/// covers them). Returns the nonce.
pub fn stamp_body(body: &mut Value, signer: &AgentId, difficulty: u32) -> Option<u64> {
    let nonce = mint(&stamp_base(signer, body), difficulty)?;
    body["stamp"] = serde_json::json!(nonce);
    Some(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        let mut d = Digest([0xff; 32]);
        assert_eq!(leading_zero_bits(&d), 0);
        d.0[0] = 0x01;
        assert_eq!(leading_zero_bits(&d), 7);
        d.0[0] = 0;
        d.0[1] = 0x10;
        assert_eq!(leading_zero_bits(&d), 11);
        assert_eq!(leading_zero_bits(&Digest([0; 32])), 256);
    }

    #[test]
    fn a_minted_stamp_meets_its_difficulty_and_no_other_proposal_s() {
        let key = Keypair::from_seed(&[7; 32]);
        let body = serde_json::json!({"space": "s", "created_at": 1, "domain": "a.b"});
        let base = stamp_base(key.id(), &body);
        let nonce = mint(&base, 12).unwrap();
        assert!(meets(&base, nonce, 12));
        // The first such nonce: every smaller one falls short.
        assert!((0..nonce).all(|n| !meets(&base, n, 12)));
        // The stamp is bound to the content and the signer.
        let other = serde_json::json!({"space": "s", "created_at": 2, "domain": "a.b"});
        let elsewhere = stamp_base(key.id(), &other);
        let someone = stamp_base(Keypair::from_seed(&[8; 32]).id(), &body);
        assert_ne!(base, elsewhere);
        assert_ne!(base, someone);
        // A stamp member in the body does not change what it is bound to.
        let mut stamped = body.clone();
        stamp_body(&mut stamped, key.id(), 12).unwrap();
        assert_eq!(stamp_base(key.id(), &stamped), base);
        assert_eq!(stamped["stamp"], serde_json::json!(nonce));
        assert!(!meets(&base, MAX_STAMP_NONCE + 1, 0));
        assert!(meets(&base, 0, 0));
    }
}
