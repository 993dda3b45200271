#!/usr/bin/env python3
"""An independent implementation of synod's wire format and rule, in Python,
checked against the shared vectors.

It derives did:key ids, canonicalizes with RFC 8785, hashes and signs
(Ed25519 is deterministic), checks the signature rule (strict encodings, the
cofactored equation) on the edge cases of signatures.json, computes the
exact log-odds of logodds.json, resolves every scenario of resolve.json with the
exact integer rule of docs/PROTOCOL.md §5-§6, replays every trust update of
trust.json (§8), and recomputes belief.json: the integer logarithm and
exponential of §14.1-§14.2, and belief scenarios pooled by §15, and
sealed.json: commitments of §18 and sealed scenarios, and open.json:
open questions clustered by §19. (The sample log, log/sample.jsonl, is checked by
`synod audit verify`, not here.) Nothing here is shared with the Rust code: agreement is the
evidence that another language gets the bit-identical answer.

Needs: cryptography, rfc8785 (pip). Run: python3 vectors/check.py
"""

import base64
import hashlib
import json
import pathlib
import re
import unicodedata
import sys

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = pathlib.Path(__file__).parent
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
ONE = 1_000_000


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def did_of(public_key: bytes) -> str:
    return "did:key:z" + b58encode(b"\xed\x01" + public_key)


def key_of(seed_hex: str):
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return private, private.public_key().public_bytes_raw()


def check_keys() -> int:
    cases = json.loads((HERE / "keys.json").read_text())["cases"]
    for case in cases:
        _, public = key_of(case["seed"])
        assert public.hex() == case["public_key"], case
        assert did_of(public) == case["did"], case
    return len(cases)


def check_messages() -> int:
    cases = json.loads((HERE / "messages.json").read_text())["cases"]
    for case in cases:
        private, public = key_of(case["seed"])
        envelope = dict(case["envelope"])
        signature = envelope.pop("signature")
        signed = rfc8785.dumps(envelope)
        assert signed == case["signed_bytes"].encode(), case["name"]
        assert hashlib.sha256(signed).hexdigest() == case["id"], case["name"]
        mine = base64.urlsafe_b64encode(private.sign(signed)).rstrip(b"=").decode()
        assert mine == signature == case["signature"], case["name"]
        assert did_of(public) == envelope["signer"], case["name"]
    return len(cases)


# The signature rule of PROTOCOL.md §2.2-§2.3 in plain integer arithmetic:
# strict encodings and the cofactored equation. (The `cryptography` package
# checks the cofactorless equation, which refuses some signatures the rule
# accepts; signatures.json has them.)
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def point_add(p1, p2):
    # Extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z.
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def scalar_mul(n, point):
    result = (0, 1, 1, 0)
    while n:
        if n & 1:
            result = point_add(result, point)
        point = point_add(point, point)
        n >>= 1
    return result


def is_identity(point):
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def decode_point(data: bytes):
    """The point of a canonical encoding, or None."""
    y = int.from_bytes(data, "little") & (2**255 - 1)
    sign = data[31] >> 7
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, P - 2, P) % P
    root = pow(x, (P + 3) // 8, P)
    if (root * root - x) % P != 0:
        root = root * SQRT_M1 % P
    if (root * root - x) % P != 0:
        return None
    if root == 0 and sign:
        return None
    if root & 1 != sign:
        root = P - root
    return (root, y, 1, root * y % P)


BASE = decode_point(bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666"))


def small_order(point) -> bool:
    return is_identity(scalar_mul(8, point))


def signature_valid(public: bytes, signature: bytes, message: bytes) -> bool:
    a = decode_point(public)
    r = decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L or small_order(a) or small_order(r):
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    neg = lambda q: ((-q[0]) % P, q[1], q[2], (-q[3]) % P)
    residual = point_add(point_add(scalar_mul(s, BASE), neg(scalar_mul(k, a))), neg(r))
    return is_identity(scalar_mul(8, residual))


def key_of_did(did: str):
    """The public key bytes of an agent id, or None if it is not valid (§2.2)."""
    alphabet = {c: i for i, c in enumerate(B58)}
    if len(did) > 64 or not did.startswith("did:key:z"):
        return None
    n = 0
    for c in did[len("did:key:z"):]:
        if c not in alphabet:
            return None
        n = n * 58 + alphabet[c]
    raw = n.to_bytes(34, "big") if n < 256**34 else b""
    if len(raw) != 34 or raw[:2] != b"\xed\x01" or did_of(raw[2:]) != did:
        return None
    point = decode_point(raw[2:])
    if point is None or small_order(point):
        return None
    return raw[2:]


def envelope_valid(envelope: dict) -> bool:
    public = key_of_did(envelope["signer"])
    text = envelope["signature"]
    if public is None or not re.fullmatch(r"[A-Za-z0-9_-]{86}", text):
        return False
    signature = base64.urlsafe_b64decode(text + "==")
    if base64.urlsafe_b64encode(signature).rstrip(b"=").decode() != text:
        return False  # unused bits set: not the one encoding of these bytes
    unsigned = {k: v for k, v in envelope.items() if k != "signature"}
    return signature_valid(public, signature, rfc8785.dumps(unsigned))


def check_signatures() -> int:
    cases = json.loads((HERE / "signatures.json").read_text())["cases"]
    for case in cases:
        assert envelope_valid(case["envelope"]) == case["valid"], case["name"]
    # The honest messages pass the same rule.
    for case in json.loads((HERE / "messages.json").read_text())["cases"]:
        assert envelope_valid(case["envelope"]), case["name"]
    return len(cases)


DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]{1,6})?")


class Refused(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class Num(str):
    """A JSON number kept as its exact text."""


def unit(text) -> int:
    """A decimal in [0, 1], in millionths, from its exact text."""
    if not isinstance(text, str) or not DECIMAL.fullmatch(text):
        raise Refused("malformed")
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    micros = int(whole) * ONE + int((frac + "000000")[:6])
    if (negative and micros > 0) or micros > ONE:
        raise Refused("out_of_range")
    return micros


# stakes: (approve_margin, reject_margin, approve_confidence,
#          reject_confidence, quorum, min_confidence, human_required)
# PROTOCOL.md §15.1: pool_threshold by stakes; the log pool and floor 0.01
# by default.
POOL_THRESHOLD = {"low": 600_000, "medium": 700_000, "high": 800_000, "critical": 800_000}
DEFAULT_POOL_FLOOR = 10_000
MAX_POOL_FLOOR = 100_000
DEFAULTS = {
    "low": (100_000, 100_000, 750_000, 750_000, 300_000, 200_000, False),
    "medium": (200_000, 200_000, 800_000, 800_000, 500_000, 300_000, False),
    "high": (400_000, 200_000, 900_000, 800_000, 600_000, 400_000, False),
    "critical": (400_000, 200_000, 900_000, 800_000, 600_000, 400_000, True),
}
POLICY_FIELDS = ("approve_margin", "reject_margin", "approve_confidence", "reject_confidence",
                 "quorum", "min_confidence", "human_required")
OPTION = re.compile(r"[a-z0-9_.-]{1,32}")
# PROTOCOL.md §5.0.1: trust above the policy's trust_cap adds no weight.
DEFAULT_TRUST_CAP = 650_000
# PROTOCOL.md §5.0.1: the most log-odds one response brings, logit(0.8).
EVIDENCE_CAP = 1_386_294_361_119


def sway(policy, stance, a, t, conf):
    """How far one response moves the tally, signed; None for an abstention.
    Linear: a*t*c in 1e-18 with the stance's sign. Log-odds: the evidence
    a*(2t)^2*clamp(logit(forecast), +-cap) in 1e-30."""
    if stance == "abstain":
        return None
    if policy["weighting"] == "linear":
        w = a * t * conf
        return w if stance == "endorse" else -w
    forecast = conf if stance == "endorse" else ONE - conf
    odds = max(-EVIDENCE_CAP, min(EVIDENCE_CAP, logit_micros(forecast)))
    return a * (2 * min(t, policy["trust_cap"])) ** 2 * odds


def reach(policy, a, t):
    """The most a member who has not answered can still move the tally."""
    if policy["weighting"] == "linear":
        return a * t
    return a * (2 * min(t, policy["trust_cap"])) ** 2 * EVIDENCE_CAP


def threshold(p):
    """The evidence a decision confidence asks for, in 1e-30."""
    return logit_micros(p) * 10**18


def resolve(policy, e, c, v, p):
    t = e + c
    if policy["human_required"]:
        return ("escalated", "stakes")
    if v * ONE < policy["quorum"] * p:
        return ("escalated", "no_quorum")
    if policy["weighting"] == "log_odds":
        if e - c >= threshold(policy["approve_confidence"]):
            return ("approved", None)
        if c - e >= threshold(policy["reject_confidence"]):
            return ("rejected", None)
        return ("escalated", "contested")
    if t < policy["min_confidence"] * v:
        return ("escalated", "low_confidence")
    if e > c and (e - c) * ONE >= policy["approve_margin"] * t:
        return ("approved", None)
    if c > e and (c - e) * ONE >= policy["reject_margin"] * t:
        return ("rejected", None)
    return ("escalated", "contested")


def early(policy, e, c, v, p, r):
    if policy["human_required"] or v * ONE < policy["quorum"] * p:
        return None
    if policy["weighting"] == "log_odds":
        if e - c - r >= threshold(policy["approve_confidence"]):
            return "approved"
        if c - e - r >= threshold(policy["reject_confidence"]):
            return "rejected"
        return None
    am, rm = policy["approve_margin"], policy["reject_margin"]
    if e + c < policy["min_confidence"] * (v + r):
        return None
    r = r * ONE
    if e > c + r and (e - c - r) * ONE >= am * (e + c + r):
        return "approved"
    if c > e + r and (c - e - r) * ONE >= rm * (e + c + r):
        return "rejected"
    return None


def fmt(value: int, decimals: int) -> str:
    whole, frac = divmod(value, 10**decimals)
    if frac == 0:
        return str(whole)
    return f"{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"


def shape(s) -> None:
    """Refuses, as `malformed`, anything that is not the scenario format:
    done for the whole document before any value is looked at."""

    def need(ok):
        if not ok:
            raise Refused("malformed")

    def decimal(v):
        need(isinstance(v, str))  # a JSON number (Num) or a string

    def fields(obj, required, optional=()):
        need(isinstance(obj, dict) and not any(isinstance(k, Num) for k in obj))
        need(not getattr(obj, "repeated", False))
        need(set(required) <= set(obj) <= set(required) | set(optional))

    def distribution(d):
        # Repeated labels are refused later, in the order of §11.3.
        need(isinstance(d, dict))
        for v in d.values():
            decimal(v)

    fields(s, ("stakes", "electorate", "proposer", "proposer_confidence", "responses"),
           ("policy", "deadline_passed", "method", "options", "proposer_distribution",
            "committee", "seed", "workers", "executive_decision", "objections", "sealed", "open"))
    need(s.get("method", "vote") in ("vote", "belief", "stake", "hierarchy", "open") and not isinstance(s.get("method"), Num))
    for name in ("workers", "objections"):
        if s.get(name) is not None:
            need(isinstance(s[name], list) and all(isinstance(w, str) and not isinstance(w, Num) for w in s[name]))
    if s.get("executive_decision") is not None:
        need(s["executive_decision"] in ("approve", "reject") and not isinstance(s["executive_decision"], Num))
    for name, bits in (("committee", 32),):
        if s.get(name) is not None:
            need(isinstance(s[name], Num) and re.fullmatch(r"\d+", s[name]) and int(s[name]) < 2**bits)
    if s.get("seed") is not None:
        need(isinstance(s["seed"], str) and not isinstance(s["seed"], Num)
             and re.fullmatch(r"[0-9a-f]{64}", s["seed"]))
    if s.get("open") is not None:
        fields(s["open"], (), ("tolerance",))
        need(isinstance(s["open"].get("tolerance", ""), str) and not isinstance(s["open"].get("tolerance"), Num))
    if s.get("sealed") is not None:
        fields(s["sealed"], ("committed",), ("commit_phase_over",))
        need(isinstance(s["sealed"]["committed"], list))
        for a in s["sealed"]["committed"]:
            need(isinstance(a, str) and not isinstance(a, Num))
        need(isinstance(s["sealed"].get("commit_phase_over", False), bool))
    if s.get("options") is not None:
        need(isinstance(s["options"], list))
        for o in s["options"]:
            need(isinstance(o, str) and not isinstance(o, Num))
    if s.get("proposer_distribution") is not None:
        distribution(s["proposer_distribution"])
    need(s["stakes"] in DEFAULTS and not isinstance(s["stakes"], Num))
    need(isinstance(s["proposer"], str) and not isinstance(s["proposer"], Num))
    decimal(s["proposer_confidence"])
    need(isinstance(s.get("deadline_passed", False), bool))
    policy = s.get("policy") or {}
    fields(policy, (), POLICY_FIELDS + ("proposer_counts", "weighting", "trust_cap",
                                        "pool", "pool_threshold", "pool_floor"))
    for k, v in policy.items():
        if k in ("human_required", "proposer_counts"):
            need(isinstance(v, bool))
        elif k == "weighting":
            need(v in ("linear", "log_odds") and not isinstance(v, Num))
        elif k == "pool":
            need(v in ("log", "linear") and not isinstance(v, Num))
        else:
            decimal(v)
    need(isinstance(s["electorate"], list) and isinstance(s["responses"], list))
    for m in s["electorate"]:
        fields(m, ("agent", "authority", "trust"), ("stake",))
        if m.get("stake") is not None:
            need(isinstance(m["stake"], Num) and re.fullmatch(r"\d+", m["stake"]) and int(m["stake"]) < 2**64)
        need(isinstance(m["agent"], str) and not isinstance(m["agent"], Num))
        decimal(m["authority"])
        decimal(m["trust"])
    for r in s["responses"]:
        fields(r, ("agent",), ("stance", "confidence", "distribution", "answer"))
        need(isinstance(r.get("answer", ""), str) and not isinstance(r.get("answer"), Num))
        need(isinstance(r["agent"], str) and not isinstance(r["agent"], Num))
        if r.get("stance") is not None:
            need(r["stance"] in ("endorse", "challenge", "abstain") and not isinstance(r["stance"], Num))
        if r.get("confidence") is not None:
            decimal(r["confidence"])
        if r.get("distribution") is not None:
            distribution(r["distribution"])


def run_scenario(raw: str) -> dict:
    # Numbers stay as their exact text (never floats); see `shape`.
    def constant(name):
        raise Refused("malformed")

    try:
        s = json.loads(raw, parse_int=Num, parse_float=Num, parse_constant=constant,
                       object_pairs_hook=Obj.of)
    except json.JSONDecodeError:
        raise Refused("malformed")
    shape(s)
    policy = dict(zip(POLICY_FIELDS, DEFAULTS[s["stakes"]]))
    policy["weighting"], policy["trust_cap"], counts = "log_odds", DEFAULT_TRUST_CAP, True
    policy["pool"], policy["pool_threshold"] = "log", POOL_THRESHOLD[s["stakes"]]
    policy["pool_floor"] = DEFAULT_POOL_FLOOR
    for name, value in (s.get("policy") or {}).items():
        if name in ("weighting", "human_required", "pool"):
            policy[name] = value
        elif name == "proposer_counts":
            counts = value
        else:
            policy[name] = unit(value)
    if min(policy["approve_confidence"], policy["reject_confidence"], policy["pool_threshold"]) <= ONE // 2:
        raise Refused("out_of_range")
    if not 0 < policy["pool_floor"] <= MAX_POOL_FLOOR:
        raise Refused("out_of_range")
    belief = s.get("method") == "belief"
    by_stake = s.get("method") == "stake"
    hier = s.get("method") == "hierarchy"
    is_open = s.get("method") == "open"
    options = s.get("options")
    if (s.get("open") is not None and not is_open) or (is_open and options is not None):
        raise Refused("malformed")
    if belief != (options is not None) and not is_open:
        raise Refused("malformed")
    if belief:
        if len(options) < 2:
            raise Refused("malformed")
        if len(options) > 16:
            raise Refused("too_large")
        if any(not OPTION.fullmatch(o) for o in options) or len(set(options)) != len(options):
            raise Refused("malformed")
    elif s.get("proposer_distribution") is not None:
        raise Refused("malformed")
    # §20.3: a committee comes with its seed, only on a vote or a stake
    # scenario (never a belief, open or hierarchy one).
    k, seed = s.get("committee"), s.get("seed")
    if (k is None) != (seed is None) or (k is not None and (belief or hier or is_open)):
        raise Refused("malformed")
    if k is not None and not 1 <= int(k) <= 100:
        raise Refused("out_of_range")
    # §18: a hierarchy's evaluations and objections are public.
    if hier and s.get("sealed") is not None:
        raise Refused("malformed")
    # §21: workers, the executive's decision and objections in a hierarchy.
    workers = s.get("workers")
    if hier:
        if workers is None or not workers:
            raise Refused("malformed")
        if len(set(workers)) != len(workers):
            raise Refused("duplicate")
    elif any(s.get(n) is not None for n in ("workers", "executive_decision", "objections")):
        raise Refused("malformed")
    workers = set(workers or [])
    decimals = 18 if policy["weighting"] == "linear" or by_stake else 30
    members, listed, stake = {}, set(), {}
    for m in s["electorate"]:
        a, t = unit(m["authority"]), unit(m["trust"])
        granted = m.get("stake")
        if granted is not None and int(granted) > 10**12:
            raise Refused("out_of_range")
        if m["agent"] in listed:
            raise Refused("duplicate")
        listed.add(m["agent"])
        if a > 0:
            members[m["agent"]] = (a, t)
            # §20.1: a granted stake in whole units, else the influence.
            stake[m["agent"]] = a * t if granted is None else int(granted) * 10**12
    if any(m["agent"] in workers for m in s["electorate"]):
        raise Refused("malformed")
    if k is not None:
        names = list(members)
        drawn = sorted(lottery_draw(bytes.fromhex(seed), [stake[n] for n in names], int(k)))
        members = {names[i]: members[names[i]] for i in drawn}
    pot = sum(stake[n] for n in members) if by_stake else sum(a * t for a, t in members.values())
    pc = unit(s["proposer_confidence"])
    if pc == 0:
        raise Refused("out_of_range")
    tolerance = 0
    if is_open:
        tolerance = number((s.get("open") or {}).get("tolerance", "0"))
        if tolerance is None or tolerance < 0:
            raise Refused("malformed")
    answers = {}
    own = s.get("proposer_distribution")
    own = None if own is None else in_order("proposer_distribution", own, options)
    # PROTOCOL.md §18: who committed; in the commit phase nothing is
    # revealed and nothing closes early.
    sealed = s.get("sealed")
    committed = None
    committing = sealed is not None and not sealed.get("commit_phase_over", False)
    if sealed is not None:
        committed = set()
        for agent in sealed["committed"]:
            if agent == s["proposer"] or agent not in members:
                raise Refused("not_eligible")
            if agent in committed:
                raise Refused("duplicate")
            committed.add(agent)
        if committing and s.get("deadline_passed", False):
            raise Refused("malformed")
        if committing and s["responses"]:
            raise Refused("wrong_phase")
    e = c = v = 0
    pool = [0] * len(options or [])
    weight = 0
    counted = []

    def believe(agent, d):
        nonlocal v, weight
        a, t = members[agent]
        w = pool_weight(policy, a, t)
        for o, p in enumerate(d):
            pool[o] += w * (penalty(policy, p) if policy["pool"] == "log" else p)
        weight += w
        v += a * t
        counted.append((agent, d))

    def count(agent, stance, conf):
        nonlocal e, c, v
        a, t = members[agent]
        if by_stake:
            # §20.2: a side weighs the member's whole stake (E, C in 10^-18).
            if stance != "abstain":
                e, c = (e + stake[agent] * 10**6, c) if stance == "endorse" else (e, c + stake[agent] * 10**6)
                v += stake[agent]
            return
        moved = sway(policy, stance, a, t, conf)
        if moved is None:
            return
        if moved >= 0:
            e += moved
        else:
            c -= moved
        v += a * t

    responded = set()
    if s["proposer"] in members:
        responded.add(s["proposer"])
        if counts and not belief and not is_open:
            count(s["proposer"], "endorse", pc)
        elif counts and own is not None:
            believe(s["proposer"], own)
    for i, r in enumerate(s["responses"]):
        stance, conf, d = r.get("stance"), r.get("confidence"), r.get("distribution")
        text = r.get("answer")
        if is_open or text is not None:
            if is_open and text is not None and stance is None and conf is not None and d is None:
                conf, text = unit(conf), normalise(text)
            elif stance == "abstain" and conf is not None and d is None and text is None:
                conf = unit(conf)
            else:
                raise Refused("malformed")
        elif stance is not None and conf is not None and d is None:
            if belief and stance != "abstain":
                raise Refused("malformed")
            conf = unit(conf)
        elif stance is None and conf is None and d is not None and belief:
            d = in_order(f"responses[{i}]", d, options)
        else:
            raise Refused("malformed")
        if r["agent"] == s["proposer"] or r["agent"] not in members:
            raise Refused("not_eligible")
        if committed is not None and r["agent"] not in committed:
            raise Refused("not_eligible")
        if r["agent"] in responded:
            raise Refused("duplicate")
        responded.add(r["agent"])
        if is_open:
            if text is not None:
                a, t = members[r["agent"]]
                answers[text] = answers.get(text, 0) + pool_weight(policy, a, t)
                v += a * t
        elif d is not None:
            believe(r["agent"], d)
        else:
            count(r["agent"], stance, conf)
    objected = []
    if hier:
        decision = s.get("executive_decision")
        if s["proposer"] not in workers:
            raise Refused("not_eligible")
        if decision is not None and any(a not in responded for a in members):
            raise Refused("invalid_state")
        for w in s.get("objections") or []:
            if decision is None:
                raise Refused("invalid_state")
            if w not in workers:
                raise Refused("not_eligible")
            if w in objected:
                raise Refused("duplicate")
            objected.append(w)
    # After the commit phase, only members that committed are waited for.
    waited = [a for a in members if a not in responded
              and (committing or committed is None or a in committed)]
    remaining = sum(reach(policy, *members[a]) for a in waited)
    everyone = not waited
    closing = s.get("deadline_passed", False) or everyone
    if is_open:
        clusters, leader, top, total = cluster_answers(answers, tolerance)
        if not closing:
            status, reason = "open", None
        elif policy["human_required"]:
            status, reason = "escalated", "stakes"
        elif v * ONE < policy["quorum"] * pot:
            status, reason = "escalated", "no_quorum"
        elif leader is not None and top * ONE >= policy["pool_threshold"] * total:
            status, reason = "approved", None
        else:
            status, reason = "escalated", "contested"
        was_early = False
    elif belief:
        leader, probs, clears = pooled(policy, pool, weight)
        if not closing:
            status, reason = "open", None
        elif policy["human_required"]:
            status, reason = "escalated", "stakes"
        elif v * ONE < policy["quorum"] * pot:
            status, reason = "escalated", "no_quorum"
        elif clears:
            status, reason = "approved", None
        else:
            status, reason = "escalated", "contested"
        was_early = False
    elif hier:
        # §21.3: a human when the policy says so; no decision escalates;
        # more than half of the workers objecting escalates at once;
        # otherwise the executive's decision, once the window has closed.
        decision = s.get("executive_decision")
        overruled = decision is not None and 2 * len(objected) > len(workers)
        if policy["human_required"]:
            verdict = ("escalated", "stakes")
        elif decision is None:
            verdict = ("escalated", "no_quorum")
        elif overruled:
            verdict = ("escalated", "objected")
        else:
            verdict = ("approved" if decision == "approve" else "rejected", None)
        if s.get("deadline_passed", False) or overruled:
            status, reason = verdict
        else:
            status, reason = "open", None
        was_early = False
    elif by_stake:
        # §20.2: more than 2/3 of the whole stake approves; a third
        # challenging rejects; both are final as soon as they hold.
        es, cs = e // 10**6, c // 10**6
        if policy["human_required"]:
            verdict = ("escalated", "stakes")
        elif 3 * es > 2 * pot:
            verdict = ("approved", None)
        elif pot > 0 and 3 * cs >= pot:
            verdict = ("rejected", None)
        else:
            verdict = ("escalated", "no_quorum")
        if closing:
            (status, reason), was_early = verdict, False
        elif committing:
            # §18: nothing is final in the commit phase.
            status, reason, was_early = "open", None, False
        elif verdict[0] in ("approved", "rejected"):
            (status, reason), was_early = verdict, True
        else:
            status, reason, was_early = "open", None, False
    elif closing:
        status, reason, was_early = *resolve(policy, e, c, v, pot), False
    elif committing:
        status, reason, was_early = "open", None, False
    else:
        verdict = early(policy, e, c, v, pot, remaining)
        status, reason, was_early = (verdict, None, True) if verdict else ("open", None, False)
    out = {
        "status": status,
        "reason": reason,
        "early": was_early,
        "tally": {"endorse": fmt(e, decimals), "challenge": fmt(c, decimals), "voted": fmt(v, 12), "potential": fmt(pot, 12)},
    }
    if k is not None:
        out["committee"] = list(members)
    if hier:
        out["hierarchy"] = {"decision": s.get("executive_decision"), "objections": len(objected), "workers": len(workers)}
    if is_open:
        places = 12 if policy["weighting"] == "linear" else 18
        out["open"] = {
            "choice": leader if status == "approved" else None,
            "clusters": {
                "leader": leader,
                "agreement": fmt(top * ONE // total, 6) if leader is not None else "0",
                "clusters": [{"answer": name, "answers": members_, "weight": fmt(w, places)}
                             for w, name, members_ in clusters],
            },
        }
    if belief:
        lead = None if leader is None else options[leader]
        out["belief"] = {
            "choice": lead if status == "approved" else None,
            "leader": lead,
            "pooled": {o: fmt(p, 6) for o, p in zip(options, probs)},
            # Total variation distance: half of sum |p - pi|, exactly.
            "divergence": {} if not probs else {
                agent: fmt(5 * sum(abs(p - q) for p, q in zip(d, probs)), 7) for agent, d in counted
            },
        }
    return out


NUMBER = re.compile(r"-?(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?")


def number(text: str):
    """PROTOCOL.md §19.1: a decimal answer in millionths, or None."""
    if not NUMBER.fullmatch(text):
        return None
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    value = int(whole) * ONE + int((frac + "000000")[:6])
    return -value if negative else value


def normalise(text: str) -> str:
    """§19.1: fold ASCII letters, collapse ASCII whitespace, trim; numbers
    in canonical form. Refuses empty, too long or control characters."""
    words, word = [], []
    for ch in text:
        if ch in "\t\n\x0b\x0c\r ":
            if word:
                words.append("".join(word))
                word = []
        elif unicodedata.category(ch) == "Cc":
            raise Refused("malformed")
        else:
            word.append(ch.lower() if "A" <= ch <= "Z" else ch)
    if word:
        words.append("".join(word))
    out = " ".join(words)
    if not out:
        raise Refused("malformed")
    if len(out.encode()) > 256:
        raise Refused("too_large")
    value = number(out)
    if value is None:
        return out
    return ("-" if value < 0 else "") + fmt(abs(value), 6)


def cluster_answers(answers: dict, tolerance: int):
    """§19.2: connected components of "the same text, or numbers within the
    tolerance", every pair compared; each cluster named by its heaviest
    answer (first in byte order on a tie), heaviest cluster first."""
    names = sorted(answers, key=lambda t: t.encode())
    parent = list(range(len(names)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, a in enumerate(names):
        for j, b in enumerate(names[:i]):
            x, y = number(a), number(b)
            same = (x is not None and y is not None and abs(x - y) <= tolerance) or (x is None and y is None and a == b)
            if same:
                parent[root(i)] = root(j)
    groups = {}
    for i, name in enumerate(names):
        groups.setdefault(root(i), []).append(name)
    clusters = []
    for members_ in groups.values():
        best = max(answers[m] for m in members_)
        named = next(m for m in members_ if answers[m] == best)
        clusters.append((sum(answers[m] for m in members_), named, members_))
    clusters.sort(key=lambda c: (-c[0], c[1].encode()))
    total = sum(answers.values())
    top = clusters[0][0] if clusters else 0
    unique = top > 0 and (len(clusters) == 1 or clusters[1][0] < top)
    return clusters, (clusters[0][1] if unique else None), (top if unique else 0), total


def check_open() -> int:
    text = (HERE / "open.json").read_text()
    cases = json.loads(text)["cases"]
    raws = list(scenario_texts(text))
    assert len(raws) == len(cases)
    for case, raw in zip(cases, raws):
        try:
            got = run_scenario(raw)
        except Refused as refused:
            assert case.get("error") == refused.kind, (case["name"], refused.kind)
            continue
        assert "error" not in case, (case["name"], got)
        assert got == case["expected"], (case["name"], got, case["expected"])
    return len(cases)


class Obj(dict):
    """A JSON object that remembers whether a member name was repeated."""

    @staticmethod
    def of(pairs):
        obj = Obj(pairs)
        obj.repeated = len(obj) != len(pairs)
        return obj


def in_order(field, d, options):
    """A distribution {option: decimal} as millionths in option order (§15):
    decimals in [0, 1], no repeated label, summing to exactly 1, naming each
    option once and nothing else."""
    probs = {label: unit(text) for label, text in d.items()}
    if d.repeated:
        raise Refused("malformed")
    if sum(probs.values()) != ONE:
        raise Refused("out_of_range")
    if set(probs) != set(options):
        raise Refused("malformed")
    return [probs[o] for o in options]


def pool_weight(policy, a, t):
    """§15.1: a member's weight factor under the policy's weighting."""
    if policy["weighting"] == "linear":
        return a * t
    return a * (2 * min(t, policy["trust_cap"])) ** 2


def penalty(policy, p):
    """§15.2: ln(10^6 / max(p, floor)) in 1e-12."""
    return ln_ratio(ONE, max(p, policy["pool_floor"], 1))


def pooled(policy, pool, weight):
    """§15.2: (leader or None, pooled millionths per option, clears)."""
    if weight == 0:
        return None, [], False
    theta = policy["pool_threshold"]
    if policy["pool"] == "log":
        best = min(pool)
        leader = pool.index(best) if pool.count(best) == 1 else None
        odds = [exp_neg((x - best) // weight) for x in pool]
        z = sum(odds)
        return leader, [e * ONE // z for e in odds], leader is not None and 10**24 >= theta * z
    best = max(pool)
    leader = pool.index(best) if pool.count(best) == 1 else None
    return leader, [x // weight for x in pool], leader is not None and best >= theta * weight


def scenario_texts(text: str):
    """The exact text of each case's "scenario" object."""
    for match in re.finditer(r'"scenario":\s*', text):
        start = match.end()
        depth, i, in_string = 0, start, False
        while True:
            ch = text[i]
            if in_string:
                if ch == "\\":
                    i += 1
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    yield text[start : i + 1]
                    break
            i += 1


def check_resolve() -> int:
    text = (HERE / "resolve.json").read_text()
    cases = json.loads(text)["cases"]
    raws = list(scenario_texts(text))
    assert len(raws) == len(cases)
    for case, raw in zip(cases, raws):
        try:
            got = run_scenario(raw)
        except Refused as refused:
            assert case.get("error") == refused.kind, (case["name"], refused.kind)
            continue
        assert "error" not in case, (case["name"], got)
        assert got == case["expected"], (case["name"], got, case["expected"])
    return len(cases)


def check_trust() -> int:
    cases = json.loads((HERE / "trust.json").read_text())["cases"]
    for case in cases:
        t, c, y, rate = (unit(case[k]) for k in ("trust", "confidence", "outcome", "rate"))
        if case["stance"] == "abstain":
            after = t
        else:
            f = c if case["stance"] == "endorse" else ONE - c
            g = ONE * ONE - 2 * (f - y) ** 2
            nxt = t * ONE * ONE + rate * (g - t * ONE)
            after = min(max(nxt // (ONE * ONE), 0), ONE)
        assert fmt(after, 6) == case["after"], case
    return len(cases)


def tdiv(a: int, b: int) -> int:
    """Integer division truncating toward zero (as PROTOCOL.md §14 says)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def logit_micros(c: int) -> int:
    """PROTOCOL.md §14: ln(c / (1 - c)) in units of 1e-12, c in millionths."""
    c = min(max(c, 1), ONE - 1)
    if c < ONE // 2:
        return -logit_micros(ONE - c)
    n, d, k = c, ONE - c, 0
    while 3 * n >= 4 * d:
        d, k = 2 * d, k + 1
    q = 10**18
    y = tdiv((n - d) * q, n + d)
    y2 = tdiv(y * y, q)
    total, term, odd = 0, y, 1
    while term != 0:
        total += tdiv(term, odd)
        term = tdiv(term * y2, q)
        odd += 2
    return tdiv(k * 693_147_180_559_945_309 + 2 * total, ONE)


LN2 = 693_147_180_559_945_309
Q = 10**18


def ln_ratio(n: int, d: int) -> int:
    """PROTOCOL.md §14.1: ln(n/d) for 1 <= d <= n, in 1e-12. After the
    reduction n/d lies in [2/3, 4/3), so y may be negative: every division
    truncates toward zero (tdiv), as the specification says."""
    assert 1 <= d <= n < 2**63
    k = 0
    while 3 * n >= 4 * d:
        d, k = 2 * d, k + 1
    y = tdiv((n - d) * Q, n + d)
    y2 = tdiv(y * y, Q)
    total, term, odd = 0, y, 1
    while term:
        total += tdiv(term, odd)
        term = tdiv(term * y2, Q)
        odd += 2
    return tdiv(k * LN2 + 2 * total, ONE)


def exp_neg(x: int) -> int:
    """PROTOCOL.md §14.2: exp(-x) for x >= 0 in 1e-12, as 1e-18, truncated."""
    big = x * ONE
    k, r = divmod(big, LN2)
    if k >= 64:
        return 0
    total, term, j = Q, Q, 1
    while True:
        term = term * r // (j * Q)
        if term == 0:
            break
        total += -term if j % 2 else term
        j += 1
    return total >> k


def check_belief() -> int:
    text = (HERE / "belief.json").read_text()
    data = json.loads(text)
    for case in data["ln"]:
        assert fmt(ln_ratio(int(case["n"]), int(case["d"])), 12) == case["ln"], case
    for case in data["exp"]:
        assert fmt(exp_neg(int(case["x"])), 18) == case["exp"], case
    cases = data["cases"]
    raws = list(scenario_texts(text))
    assert len(raws) == len(cases)
    for case, raw in zip(cases, raws):
        try:
            got = run_scenario(raw)
        except Refused as refused:
            assert case.get("error") == refused.kind, (case["name"], refused.kind)
            continue
        assert "error" not in case, (case["name"], got)
        assert got == case["expected"], (case["name"], got, case["expected"])
    return len(data["ln"]) + len(data["exp"]) + len(cases)


def stamp_base(signer: str, body: dict) -> bytes:
    """PROTOCOL.md §16: the proposal's id as it would be without its stamp."""
    plain = {k: v for k, v in body.items() if k != "stamp"}
    return hashlib.sha256(rfc8785.dumps({"body": plain, "signer": signer, "type": "proposal"})).digest()


def stamp_hash(base: bytes, nonce: int) -> bytes:
    return hashlib.sha256(b"synod/stamp/v1" + base + nonce.to_bytes(8, "big")).digest()


def zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte:
            return bits + 8 - byte.bit_length()
        bits += 8
    return bits


def check_stamps() -> int:
    cases = json.loads((HERE / "stamp.json").read_text())["cases"]
    for case in cases:
        _, public = key_of(case["signer_seed"])
        assert did_of(public) == case["signer"], case["why"]
        base = stamp_base(case["signer"], case["body"])
        assert base.hex() == case["base"], case["why"]
        digest = stamp_hash(base, case["nonce"])
        assert digest.hex() == case["hash"], case["why"]
        valid = zero_bits(digest) >= case["difficulty"] and case["nonce"] < 2**53
        assert valid == case["valid"], case["why"]
        if valid:
            # The first such nonce: every smaller one falls short.
            assert all(zero_bits(stamp_hash(base, n)) < case["difficulty"] for n in range(case["nonce"])), case
    return len(cases)


def seal(proposal: bytes, signer: str, salt: bytes, answer: dict) -> bytes:
    """PROTOCOL.md §18: the commitment to an answer."""
    who = signer.encode()
    return hashlib.sha256(b"synod/seal/v1" + proposal + len(who).to_bytes(8, "big") + who
                          + len(salt).to_bytes(8, "big") + salt + rfc8785.dumps(answer)).digest()


def check_sealed() -> int:
    text = (HERE / "sealed.json").read_text()
    data = json.loads(text)
    for case in data["commitments"]:
        _, public = key_of(case["signer_seed"])
        assert did_of(public) == case["signer"], case["why"]
        reveal = case["reveal"]
        answer = {k: v for k, v in reveal.items() if k not in ("created_at", "proposal", "salt", "space")}
        assert rfc8785.dumps(answer).decode() == case["answer_jcs"], case["why"]
        salt = reveal["salt"]
        assert re.fullmatch(r"([0-9a-f]{2}){16,64}", salt), case["why"]
        digest = seal(bytes.fromhex(reveal["proposal"]), case["signer"], bytes.fromhex(salt), answer)
        assert (digest.hex() == case["commitment"]) == case["opens"], case["why"]
    cases = data["cases"]
    raws = list(scenario_texts(text))
    assert len(raws) == len(cases)
    for case, raw in zip(cases, raws):
        try:
            got = run_scenario(raw)
        except Refused as refused:
            assert case.get("error") == refused.kind, (case["name"], refused.kind)
            continue
        assert "error" not in case, (case["name"], got)
        assert got == case["expected"], (case["name"], got, case["expected"])
    return len(data["commitments"]) + len(cases)


def check_log_odds() -> int:
    cases = json.loads((HERE / "logodds.json").read_text())["cases"]
    for case in cases:
        v = logit_micros(unit(case["confidence"]))
        text = ("-" if v < 0 else "") + fmt(abs(v), 12)
        assert text == case["logit"], (case, text)
    return len(cases)


def lottery_seed(parts) -> bytes:
    """PROTOCOL.md §15: SHA-256 of the tag and each part, length-prefixed."""
    h = hashlib.sha256(b"synod/lottery/v1")
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.digest()


def lottery_draw(seed: bytes, stakes, k: int):
    """PROTOCOL.md §15: k draws without replacement, by rejection sampling."""
    drawn, total, out = set(), sum(stakes), []
    for j in range(k):
        if total == 0:
            break
        limit = ((2**128 - 1) // total) * total
        attempt = 0
        while True:
            h = hashlib.sha256(seed + j.to_bytes(4, "big") + attempt.to_bytes(4, "big")).digest()
            x = int.from_bytes(h[:16], "big")
            if x < limit:
                r = x % total
                break
            attempt += 1
        running = 0
        for i, stake in enumerate(stakes):
            if i in drawn:
                continue
            running += stake
            if r < running:
                drawn.add(i)
                total -= stake
                out.append(i)
                break
    return out


def check_lotteries() -> int:
    cases = json.loads((HERE / "lottery.json").read_text())["cases"]
    for case in cases:
        seed = lottery_seed([bytes.fromhex(p) for p in case["parts_hex"]])
        assert seed.hex() == case["seed"], case
        stakes = [int(x) for x in case["stakes"]]
        assert lottery_draw(seed, stakes, case["k"]) == case["drawn"], case
    return len(cases)


def check_stake() -> int:
    text = (HERE / "stake.json").read_text()
    data = json.loads(text)
    raws = list(scenario_texts(text))
    assert len(raws) == len(data["cases"])
    for case, raw in zip(data["cases"], raws):
        try:
            got = run_scenario(raw)
        except Refused as refused:
            assert case.get("error") == refused.kind, (case["name"], refused.kind)
            continue
        assert "error" not in case, (case["name"], got)
        assert got == case["expected"], (case["name"], got, case["expected"])
    for case in data["proposers"]:
        seed = lottery_seed([b"synod/proposer", case["domain"].encode(),
                             case["round"].to_bytes(8, "big"), bytes.fromhex(case["anchor"])])
        assert seed.hex() == case["seed"], case
        assert lottery_draw(seed, [int(x) for x in case["stakes"]], 1) == case["drawn"], case
    return len(data["cases"]) + len(data["proposers"])


def check_hierarchy() -> int:
    text = (HERE / "hierarchy.json").read_text()
    cases = json.loads(text)["cases"]
    raws = list(scenario_texts(text))
    assert len(raws) == len(cases)
    for case, raw in zip(cases, raws):
        try:
            got = run_scenario(raw)
        except Refused as refused:
            assert case.get("error") == refused.kind, (case["name"], refused.kind)
            continue
        assert "error" not in case, (case["name"], got)
        assert got == case["expected"], (case["name"], got, case["expected"])
    return len(cases)


def main() -> int:
    counts = {
        "keys": check_keys(),
        "messages": check_messages(),
        "signature edge cases": check_signatures(),
        "resolve scenarios": check_resolve(),
        "trust updates": check_trust(),
        "log-odds values": check_log_odds(),
        "lottery draws": check_lotteries(),
        "belief values and scenarios": check_belief(),
        "admission stamps": check_stamps(),
        "stake scenarios and proposer draws": check_stake(),
        "hierarchy scenarios": check_hierarchy(),
        "sealed commitments and scenarios": check_sealed(),
        "open-question scenarios": check_open(),
    }
    for name, n in counts.items():
        print(f"python agrees on {n} {name}")
    total = sum(counts.values())
    print(f"{total} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
