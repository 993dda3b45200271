"""Python signs and matches what Rust signed; Python verifies what Rust signed
(vectors/ is written by the Rust tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from synod import (
    Keypair,
    SignedMessage,
    configuration_body,
    decision_body,
    grant_change,
    outcome_body,
    proposal_body,
    registration_body,
    response_body,
    set_change,
    sign_message,
    verify_chain,
)
from synod.keys import GROUP_ORDER, _is_small_order as is_small_order, b64url_decode, b64url_encode, public_key_from_did, verify_strict
from synod.log import ChainError, entry_hash
from synod.wire import signed_bytes

from .conftest import VECTORS

KEYS = json.loads((VECTORS / "keys.json").read_text())["cases"]
MESSAGES = json.loads((VECTORS / "messages.json").read_text())["cases"]
SIGNATURE_EDGES = json.loads((VECTORS / "signatures.json").read_text())["cases"]
SAMPLE_LOG = [json.loads(line) for line in (VECTORS / "log" / "sample.jsonl").read_text().splitlines() if line.strip()]


def test_the_vectors_are_there() -> None:
    assert len(KEYS) >= 4
    assert {c["type"] for c in MESSAGES} == {
        "configuration",
        "registration",
        "proposal",
        "response",
        "outcome",
        "decision",
    }
    assert len(SAMPLE_LOG) > 10


@pytest.mark.parametrize("case", KEYS, ids=lambda c: c["did"][-8:])
def test_keys_derive_the_same_public_key_and_did(case: dict[str, Any]) -> None:
    key = Keypair.from_seed_hex(case["seed"])
    assert key.public_key.hex() == case["public_key"]
    assert key.did == case["did"]
    assert public_key_from_did(case["did"]).hex() == case["public_key"]


@pytest.mark.parametrize("case", MESSAGES, ids=lambda c: c["name"])
def test_envelope_canonicalizes_hashes_and_signs_byte_for_byte(case: dict[str, Any]) -> None:
    envelope = case["envelope"]
    message = SignedMessage.from_dict(envelope)
    assert message.signed_bytes == case["signed_bytes"].encode("utf-8")
    assert message.id == case["id"]
    assert message.verify(), "Rust's signature must verify in Python"
    key = Keypair.from_seed_hex(case["seed"])
    assert key.did == case["signer"]
    mine = sign_message(
        case["type"],
        {k: v for k, v in case["body"].items() if k not in ("space", "created_at")},
        key,
        space=case["body"]["space"],
        created_at=case["body"]["created_at"],
    )
    assert mine.signature == case["signature"]
    assert mine.to_dict() == envelope


def _rebuild(case: dict[str, Any]) -> dict[str, Any]:
    """The case's body made again with the package's builders from its fields."""
    b = case["body"]
    kind = case["type"]
    if kind == "registration":
        return registration_body(
            seq=b["seq"],
            name=b["name"],
            vendor=b.get("vendor"),
            model=b.get("model"),
            authorities=b["authorities"],
            roles=b["roles"],
        )
    if kind == "proposal":
        return proposal_body(
            domain=b["domain"],
            kind=b["action"]["kind"],
            summary=b["action"]["summary"],
            payload=b["action"]["payload"],
            confidence=b["confidence"],
            stakes=b["stakes"],
            deadline=b["deadline"],
            policy=b.get("policy"),
        )
    if kind == "response":
        return response_body(
            proposal=b["proposal"], stance=b["stance"], confidence=b["confidence"], reasoning=b["reasoning"]
        )
    if kind == "outcome":
        return outcome_body(proposal=b["proposal"], result=b.get("result"), score=b.get("score"))
    if kind == "decision":
        return decision_body(proposal=b["proposal"], decision=b["decision"], note=b["note"])
    change = b["change"]
    if "grant" in change:
        g = change["grant"]
        built = grant_change(g["agent"], authorities=g["authorities"], roles=g["roles"])
    else:
        built = set_change(**change["set"])
    return configuration_body(seq=b["seq"], change=built)


@pytest.mark.parametrize("case", MESSAGES, ids=lambda c: c["name"])
def test_builders_make_the_message_rust_signed(case: dict[str, Any]) -> None:
    key = Keypair.from_seed_hex(case["seed"])
    body = _rebuild(case)
    message = sign_message(
        case["type"], body, key, space=case["body"]["space"], created_at=case["body"]["created_at"]
    )
    assert message.signed_bytes == case["signed_bytes"].encode("utf-8")
    assert message.signature == case["signature"]
    assert message.id == case["id"]


@pytest.mark.parametrize("case", MESSAGES[:3], ids=lambda c: c["name"])
def test_a_changed_message_does_not_verify(case: dict[str, Any]) -> None:
    envelope = json.loads(json.dumps(case["envelope"]))
    envelope["body"]["created_at"] += 1
    assert not SignedMessage.from_dict(envelope).verify()
    other = Keypair.from_seed_hex("11" * 32)
    envelope = dict(case["envelope"], signer=other.did)
    assert not SignedMessage.from_dict(envelope).verify()
    sig = bytearray(b64url_decode(case["signature"]))
    sig[5] ^= 1
    assert not SignedMessage.from_dict(dict(case["envelope"], signature=b64url_encode(bytes(sig)))).verify()


def test_strict_verification_refuses_a_non_canonical_s_and_small_order_keys() -> None:
    case = MESSAGES[0]
    key = public_key_from_did(case["signer"])
    data = case["signed_bytes"].encode("utf-8")
    sig = b64url_decode(case["signature"])
    assert verify_strict(key, sig, data)
    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + GROUP_ORDER).to_bytes(32, "little")
    assert not verify_strict(key, malleated, data)
    # The identity point (small order) as a public key, with any signature.
    identity = (1).to_bytes(32, "little")
    assert not verify_strict(identity, identity + (0).to_bytes(32, "little"), data)
    order_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
    assert is_small_order(order_8) and is_small_order(identity) and not is_small_order(key)
    # A small-order R is refused even with an otherwise well-formed signature.
    assert not verify_strict(key, order_8 + sig[32:], data)


@pytest.mark.parametrize("case", SIGNATURE_EDGES, ids=lambda c: c["name"])
def test_signature_edge_cases_are_judged_as_the_rule_says(case: dict[str, Any]) -> None:
    # Torsion in R passes (the cofactored equation) although OpenSSL refuses
    # it; S >= L, small-order R or key, a non-canonical R are refused.
    assert SignedMessage.from_dict(case["envelope"]).verify() is case["valid"], case["why"]


def test_the_sample_log_chains_and_every_signature_verifies() -> None:
    messages = [line["message"] for line in SAMPLE_LOG if line["message"] is not None]
    assert messages and all(SignedMessage.from_dict(m).verify() for m in messages)
    head = verify_chain(SAMPLE_LOG)
    assert head == SAMPLE_LOG[-1]["hash"]
    for line in SAMPLE_LOG:
        assert entry_hash(line["index"], line["time"], line["prev"], line["message"]) == line["hash"]


def test_a_tampered_log_line_is_caught() -> None:
    lines = json.loads(json.dumps(SAMPLE_LOG))
    lines[3]["time"] += 1
    with pytest.raises(ChainError, match="hash mismatch"):
        verify_chain(lines)
    lines = json.loads(json.dumps(SAMPLE_LOG))
    target = next(line for line in lines if line["message"] and line["message"]["type"] == "response")
    target["message"]["body"]["confidence"] = "1"
    with pytest.raises(ChainError, match="bad signature"):
        verify_chain(lines)
    with pytest.raises(ChainError, match="expected index"):
        verify_chain(SAMPLE_LOG[1:])


def test_signed_bytes_sort_members_and_keep_unicode() -> None:
    data = signed_bytes("outcome", {"b": 1, "a": [True, None], "z": "Zoë"}, "did:key:z6Mkx")
    assert data == '{"body":{"a":[true,null],"b":1,"z":"Zoë"},"signer":"did:key:z6Mkx","type":"outcome"}'.encode()


def test_admission_stamps_match_the_rust_vectors() -> None:
    """vectors/stamp.json (PROTOCOL §16): this package's stamp base, hash and
    minting agree with Rust's; a stamp moved to other content falls short."""
    from synod.stamp import leading_zero_bits, meets, mint, stamp_base, stamp_hash

    for case in json.loads((VECTORS / "stamp.json").read_text())["cases"]:
        base = stamp_base(case["signer"], case["body"])
        assert base.hex() == case["base"], case["why"]
        assert stamp_hash(base, case["nonce"]).hex() == case["hash"], case["why"]
        assert meets(base, case["nonce"], case["difficulty"]) == case["valid"], case["why"]
        if case["valid"]:
            assert mint(case["signer"], case["body"], case["difficulty"]) == case["nonce"], case["why"]
            assert leading_zero_bits(bytes.fromhex(case["hash"])) >= case["difficulty"]


def test_sealed_commitments_match_the_rust_vectors() -> None:
    """vectors/sealed.json (PROTOCOL §18): this package's commitments agree
    with Rust's; the same reveal carried to another proposal, signer, salt
    or spelling of a decimal does not open the commitment."""
    from synod.sealed import answer_of, commitment

    cases = json.loads((VECTORS / "sealed.json").read_text())["commitments"]
    assert len(cases) >= 7
    for case in cases:
        reveal = case["reveal"]
        got = commitment(reveal["proposal"], case["signer"], bytes.fromhex(reveal["salt"]), answer_of(reveal))
        assert (got == case["commitment"]) == case["opens"], case["why"]
