//! The signature rule, single and batched.
//!
//! synod checks Ed25519 signatures with strict encodings and the
//! *cofactored* equation (the rule of ZIP-215, with its encoding checks made
//! strict; docs/PROTOCOL.md §2):
//!
//! - the key `A` and the nonce point `R` are canonical encodings of points
//!   that are not of small order;
//! - `S` is a canonical scalar (`S < ℓ`);
//! - `[8]([S]B − [k]A − R)` is the identity, where `k = SHA-512(R ‖ A ‖ M)`.
//!
//! The cofactored equation is what makes batching safe: a batch of them,
//! combined with random-looking coefficients, holds exactly when each one
//! does (up to a 2⁻¹²⁸ chance), so a node that verifies a batch of
//! signatures at once and an auditor who verifies them one by one always
//! agree. With the cofactorless equation they need not: a signature whose
//! `R` carries a torsion component fails alone but passes in a batch with
//! probability about 1/8. Every signature an honest signer makes passes
//! both equations.
//!
//! The batch coefficients are derived from the batch itself (a hash of every
//! signature, key and message hash in it), so batches are deterministic and
//! a signer cannot choose signatures that cancel: it would have to know the
//! coefficients before choosing the signatures they are computed from.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest as _, Sha512};

/// Domain separation of the batch coefficients.
const BATCH_CONTEXT: &[u8] = b"synod/ed25519-batch/v1";

/// Whether 32 bytes are the canonical encoding of a curve point's `y` and
/// sign: `y < p = 2²⁵⁵ − 19`. (The other non-canonical form, `x = 0` with the
/// sign bit set, only names points of small order, which are refused anyway.)
pub(crate) fn is_canonical_point(bytes: &[u8; 32]) -> bool {
    // y ≥ p exactly when the low 255 bits are ≥ 2²⁵⁵ − 19: every byte but
    // the first is 0xff (0x7f for the top one, ignoring the sign bit) and the
    // first is at least 0xed.
    let top = bytes[31] & 0x7f;
    !(top == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed)
}

/// Why 32 bytes are not an acceptable public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFault {
    /// Not the canonical encoding of a curve point.
    Encoding,
    /// A point of small order (a "weak" key).
    SmallOrder,
}

/// Decodes and checks a public key: canonical and not of small order. (A key
/// with a torsion component is accepted: honest keys never have one, the
/// cofactored equation ignores it, and checking for it would cost a scalar
/// multiplication each time a stored id is read back.)
pub(crate) fn check_key(bytes: &[u8; 32]) -> Result<EdwardsPoint, KeyFault> {
    if !is_canonical_point(bytes) {
        return Err(KeyFault::Encoding);
    }
    let point = CompressedEdwardsY(*bytes)
        .decompress()
        .ok_or(KeyFault::Encoding)?;
    if point.is_small_order() {
        return Err(KeyFault::SmallOrder);
    }
    Ok(point)
}

/// One signature, decoded and ready for its equation: `R` and `S` checked
/// and decoded, `k` computed. Building one costs a point decompression and a
/// hash; the equation itself is the expensive part.
#[derive(Clone, Copy)]
pub(crate) struct Equation {
    key: EdwardsPoint,
    key_bytes: [u8; 32],
    r: EdwardsPoint,
    r_bytes: [u8; 32],
    s: Scalar,
    k: Scalar,
}

impl Equation {
    /// Decodes `signature` by `key` (whose bytes are `key_bytes`) over
    /// `message`. `None` when `R` or `S` is not acceptable: the signature
    /// fails without its equation being checked.
    pub(crate) fn new(
        key: EdwardsPoint,
        key_bytes: [u8; 32],
        signature: &[u8; 64],
        message: &[u8],
    ) -> Option<Equation> {
        let r_bytes: [u8; 32] = signature[..32].try_into().ok()?;
        let s_bytes: [u8; 32] = signature[32..].try_into().ok()?;
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
        if !is_canonical_point(&r_bytes) {
            return None;
        }
        let r = CompressedEdwardsY(r_bytes).decompress()?;
        if r.is_small_order() {
            return None;
        }
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(key_bytes);
        h.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        Some(Equation {
            key,
            key_bytes,
            r,
            r_bytes,
            s,
            k,
        })
    }

    /// Checks this one equation: `[8]([S]B − [k]A − R) = 0`.
    pub(crate) fn holds(&self) -> bool {
        let sb_minus_ka =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-self.key, &self.s);
        (sb_minus_ka - self.r).mul_by_cofactor().is_identity()
    }
}

/// Checks many equations at once: `[8](Σ zᵢRᵢ + Σ (zᵢkᵢ)Aᵢ − (Σ zᵢSᵢ)B) = 0`
/// with 128-bit coefficients `zᵢ` derived from the whole batch. True when
/// every equation holds; false when at least one does not, except with
/// probability about 2⁻¹²⁸. A caller that gets false checks them one by one
/// to find which.
pub(crate) fn batch_holds(equations: &[&Equation]) -> bool {
    match equations {
        [] => true,
        [one] => one.holds(),
        _ => {
            let mut transcript = Sha512::new();
            transcript.update(BATCH_CONTEXT);
            transcript.update((equations.len() as u64).to_le_bytes());
            for e in equations {
                transcript.update(e.r_bytes);
                transcript.update(e.key_bytes);
                transcript.update(e.s.as_bytes());
                transcript.update(e.k.as_bytes());
            }
            let seed: [u8; 64] = transcript.finalize().into();

            let mut scalars = Vec::with_capacity(2 * equations.len() + 1);
            let mut points = Vec::with_capacity(2 * equations.len() + 1);
            let mut s_sum = Scalar::ZERO;
            for (i, e) in equations.iter().enumerate() {
                let z = coefficient(&seed, i as u64);
                s_sum += z * e.s;
                scalars.push(z);
                points.push(-e.r);
                scalars.push(z * e.k);
                points.push(-e.key);
            }
            scalars.push(s_sum);
            points.push(ED25519_BASEPOINT_POINT);
            EdwardsPoint::vartime_multiscalar_mul(scalars, points)
                .mul_by_cofactor()
                .is_identity()
        }
    }
}

/// The `i`th batch coefficient: 128 bits of SHA-512(seed ‖ i), never zero.
fn coefficient(seed: &[u8; 64], i: u64) -> Scalar {
    let mut h = Sha512::new();
    h.update(seed);
    h.update(i.to_le_bytes());
    let out: [u8; 64] = h.finalize().into();
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&out[..16]);
    bytes[0] |= 1;
    Scalar::from_bytes_mod_order(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signer, SigningKey};

    fn key(seed: u8) -> (SigningKey, EdwardsPoint, [u8; 32]) {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let bytes = signing.verifying_key().to_bytes();
        let point = check_key(&bytes).expect("honest keys pass");
        (signing, point, bytes)
    }

    /// A signature whose `R` carries a torsion component: its signer picks
    /// `R = rB + T` and answers the challenge of that `R` honestly. The
    /// cofactorless equation fails (the residual is `−T`); the cofactored
    /// one holds.
    fn torsioned(signing: &SigningKey, message: &[u8]) -> [u8; 64] {
        let a = signing.to_scalar();
        let r = Scalar::from_bytes_mod_order([7u8; 32]);
        let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1]).compress();
        let mut h = Sha512::new();
        h.update(big_r.as_bytes());
        h.update(signing.verifying_key().as_bytes());
        h.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    #[test]
    fn honest_signatures_hold_alone_and_in_batches() {
        let equations: Vec<Equation> = (1..=9u8)
            .map(|i| {
                let (signing, point, bytes) = key(i);
                let message = [i; 100];
                let sig = signing.sign(&message).to_bytes();
                Equation::new(point, bytes, &sig, &message).unwrap()
            })
            .collect();
        assert!(equations.iter().all(Equation::holds));
        let refs: Vec<&Equation> = equations.iter().collect();
        for n in 0..=refs.len() {
            assert!(batch_holds(&refs[..n]), "batch of {n}");
        }
    }

    #[test]
    fn one_bad_signature_fails_the_batch() {
        let mut equations: Vec<Equation> = (1..=8u8)
            .map(|i| {
                let (signing, point, bytes) = key(i);
                let sig = signing.sign(b"message").to_bytes();
                Equation::new(point, bytes, &sig, b"message").unwrap()
            })
            .collect();
        // Signed by key 1, claimed by key 2.
        let (signing, _, _) = key(1);
        let (_, point, bytes) = key(2);
        let sig = signing.sign(b"message").to_bytes();
        let forged = Equation::new(point, bytes, &sig, b"message").unwrap();
        assert!(!forged.holds());
        equations.insert(3, forged);
        let refs: Vec<&Equation> = equations.iter().collect();
        assert!(!batch_holds(&refs));
        assert!(!batch_holds(&refs[3..5]));
    }

    #[test]
    fn torsion_in_r_is_judged_the_same_alone_and_batched() {
        let (signing, point, bytes) = key(3);
        let sig = torsioned(&signing, b"m");
        // Cofactorless verification refuses it.
        assert!(
            signing
                .verifying_key()
                .verify_strict(b"m", &ed25519_dalek::Signature::from_bytes(&sig))
                .is_err()
        );
        let e = Equation::new(point, bytes, &sig, b"m").unwrap();
        assert!(e.holds());
        let (other, p2, b2) = key(4);
        let honest = Equation::new(p2, b2, &other.sign(b"n").to_bytes(), b"n").unwrap();
        // Whatever the coefficients, the batch agrees with the singles.
        for n in 1..40u8 {
            let msg = [n; 3];
            let sig = torsioned(&signing, &msg);
            let e = Equation::new(point, bytes, &sig, &msg).unwrap();
            assert!(batch_holds(&[&e, &honest]));
        }
    }

    #[test]
    fn bad_encodings_are_refused() {
        // y = p: not canonical.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!is_canonical_point(&p));
        assert_eq!(check_key(&p).unwrap_err(), KeyFault::Encoding);
        p[0] = 0xec;
        assert!(is_canonical_point(&p));
        // The identity is of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(check_key(&identity).unwrap_err(), KeyFault::SmallOrder);
        // S = ℓ is not canonical.
        let (signing, point, bytes) = key(6);
        let mut sig = signing.sign(b"x").to_bytes();
        // ℓ = 2²⁵² + 27742317777372353535851937790883648493, little-endian.
        let mut ell = [0u8; 32];
        ell[..16].copy_from_slice(&27742317777372353535851937790883648493u128.to_le_bytes());
        ell[31] = 0x10;
        sig[32..].copy_from_slice(&ell);
        assert!(Equation::new(point, bytes, &sig, b"x").is_none());
        // R = the identity: small order.
        let mut sig = signing.sign(b"x").to_bytes();
        sig[..32].copy_from_slice(&identity);
        assert!(Equation::new(point, bytes, &sig, b"x").is_none());
    }
}
