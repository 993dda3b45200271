"""Every error kind the node can be made to answer comes back as a
SynodError with its kind and HTTP status, and a refusal changes nothing."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import pytest

from synod import ERROR_KINDS, Client, Keypair, SealedAnswer, SynodError, proposal_body, response_body

from .conftest import Team

# crates/synod-node/src/api.rs status_of, plus the HTTP-only kinds.
STATUS = {
    "malformed": 400,
    "wrong_space": 400,
    "bad_signature": 401,
    "unauthorized": 401,
    "unknown_agent": 403,
    "not_eligible": 403,
    "wrong_role": 403,
    "unknown_proposal": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "duplicate": 409,
    "proposal_closed": 409,
    "invalid_state": 409,
    "wrong_phase": 409,
    "too_large": 413,
    "wrong_host": 421,
    "out_of_range": 422,
    "policy_violation": 422,
    "insufficient_work": 422,
    "bad_deadline": 422,
    "clock_skew": 422,
    "bad_reveal": 422,
}

UNKNOWN_ID = "ab" * 32


class World:
    sealed: SealedAnswer

    def __init__(self, team: Team, node: Client) -> None:
        self.team = team
        self.node = node
        # Open: critical stakes never close early.
        self.open = node.propose("fraud.detection", "block_card", "open one", 0.8, stakes="critical", key=team.alice)["id"]
        node.respond(self.open, "endorse", 0.7, key=team.bob)
        # Closed: approved at once (bob endorses with full confidence).
        self.closed = node.propose("fraud.detection", "block_card", "closed one", 0.9, key=team.alice)["id"]
        node.respond(self.closed, "endorse", 1, key=team.bob)


Case = Callable[[World], object]


def _tampered(w: World) -> object:
    message = w.node.sign(
        "response", response_body(proposal=w.open, stance="endorse", confidence="0.5"), key=w.team.carol
    )
    forged = replace(message, body={**message.body, "confidence": "0.9"})
    return w.node.submit(forged)


def _wrong_endpoint(w: World) -> object:
    message = w.node.sign(
        "response", response_body(proposal=w.open, stance="endorse", confidence="0.5"), key=w.team.carol
    )
    return w.node.post_bytes("/v1/proposals", message.to_bytes())


def _oversized(w: World) -> object:
    body = proposal_body(
        domain="fraud.detection",
        kind="big",
        summary="too big",
        confidence="0.5",
        stakes="low",
        deadline=w.node.now() + 60_000,
        payload="x" * 70_000,
    )
    return w.node.submit(w.node.sign("proposal", body, key=w.team.alice))


CASES: dict[str, tuple[str, Case]] = {
    "not json": ("malformed", lambda w: w.node.post_bytes(f"/v1/proposals/{w.open}/responses", b'{"type": "response",')),
    "a response posted as a proposal": ("malformed", _wrong_endpoint),
    "a bad query parameter": ("malformed", lambda w: w.node.request("GET", "/v1/proposals", query={"colour": "red"})),
    "a forged body": ("bad_signature", _tampered),
    "an unadmitted signer": (
        "unknown_agent",
        lambda w: w.node.propose("fraud.detection", "x", "outsider", 0.5, key=Keypair.generate()),
    ),
    "the proposer responding": ("not_eligible", lambda w: w.node.respond(w.open, "endorse", 1, key=w.team.alice)),
    "an outsider of the electorate": ("not_eligible", lambda w: w.node.respond(w.open, "endorse", 1, key=w.team.oscar)),
    "a second response": ("duplicate", lambda w: w.node.respond(w.open, "challenge", 1, key=w.team.bob)),
    "a response after closing": ("proposal_closed", lambda w: w.node.respond(w.closed, "endorse", 1, key=w.team.carol)),
    "a confidence above 1": ("out_of_range", lambda w: w.node.respond(w.open, "endorse", "1.5", key=w.team.carol)),
    "a proposal confidence of 0": (
        "out_of_range",
        lambda w: w.node.propose("fraud.detection", "x", "zero", 0, key=w.team.alice),
    ),
    "a summary over 200 characters": (
        "too_large",
        lambda w: w.node.propose("fraud.detection", "x", "s" * 201, 0.5, key=w.team.alice),
    ),
    "a message over 64 KiB": ("too_large", _oversized),
    "an unknown proposal": ("unknown_proposal", lambda w: w.node.respond(UNKNOWN_ID, "endorse", 1, key=w.team.bob)),
    "an oracle proposing": ("wrong_role", lambda w: w.node.propose("fraud.detection", "x", "oracle", 0.5, key=w.team.oscar)),
    "an agent configuring": ("wrong_role", lambda w: w.node.set_config(mode="open", key=w.team.alice)),
    "a loosened policy": (
        "policy_violation",
        lambda w: w.node.propose("fraud.detection", "x", "loose", 0.5, policy={"quorum": "0.1"}, key=w.team.alice),
    ),
    "a proposal without the work the space asks": (
        "insufficient_work",
        lambda w: w.node.submit(
            w.node.sign(
                "proposal",
                proposal_body(
                    domain="fraud.detection", kind="x", summary="no stamp", confidence="0.5", stakes="low",
                    deadline=w.node.now() + 60_000,
                ),
                key=w.team.alice,
            )
        ),
    ),
    "a past deadline": (
        "bad_deadline",
        lambda w: w.node.propose("fraud.detection", "x", "late", 0.5, deadline=w.node.now() - 1_000, key=w.team.alice),
    ),
    "a message from the future": (
        "clock_skew",
        lambda w: w.node.submit(
            w.node.sign(
                "response",
                response_body(proposal=w.open, stance="endorse", confidence="0.5"),
                key=w.team.carol,
                created_at=w.node.now() + 600_000,
            )
        ),
    ),
    "a stale message": (
        "duplicate",
        lambda w: w.node.submit(
            w.node.sign(
                "response",
                response_body(proposal=w.open, stance="endorse", confidence="0.5"),
                key=w.team.carol,
                created_at=w.node.now() - 3_600_000,
            )
        ),
    ),
    "another space": (
        "wrong_space",
        lambda w: w.node.submit(
            w.node.sign(
                "response",
                response_body(proposal=w.open, stance="endorse", confidence="0.5"),
                key=w.team.carol,
                space="elsewhere",
            )
        ),
    ),
    "an outcome while open": ("invalid_state", lambda w: w.node.report_outcome(w.open, result="success", key=w.team.oscar)),
    "a decision on an open proposal": (
        "invalid_state",
        lambda w: w.node.decide(w.open, "approve", reviewer_token=w.team.reviewer_token),
    ),
    "a reveal during the commit phase": ("wrong_phase", lambda w: w.node.reveal(w.sealed, key=w.team.carol)),
    "a reveal of another answer": (
        "bad_reveal",
        lambda w: w.node.reveal(replace(w.sealed, body={**w.sealed.body, "confidence": "0.9"}), key=w.team.carol),
    ),
    "an unknown proposal read": ("not_found", lambda w: w.node.proposal(UNKNOWN_ID)),
    "an unknown agent read": ("not_found", lambda w: w.node.agent(Keypair.generate().did)),
    "an unknown route": ("not_found", lambda w: w.node.request("GET", "/v1/nothing")),
    "a bad reviewer token": ("unauthorized", lambda w: w.node.decide(w.open, "approve", reviewer_token="synod_rt_nope")),
    "a wrong method": ("method_not_allowed", lambda w: w.node.request("DELETE", "/v1/space")),
    "an unknown host name": (
        "wrong_host",
        lambda w: Client(w.node.base_url, headers={"host": "synod.example"}).space(),
    ),
}


def _sealed(w: World, commit_ms: int) -> None:
    """A sealed proposal (PROTOCOL §18) carol has committed to."""
    pid = w.node.propose("fraud.detection", "x", f"sealed {commit_ms}", 0.8, commit_ms=commit_ms, key=w.team.alice)["id"]
    w.sealed = w.node.commit(pid, "endorse", "0.6", "looks fine", key=w.team.carol)


def _sealed_and_revealing(w: World) -> None:
    _sealed(w, 1_000)
    # The node ticks at the commit deadline.
    time.sleep(1.5)


#: What a case needs first (not part of what it checks).
SETUP = {
    "a reveal during the commit phase": lambda w: _sealed(w, 300_000),
    "a reveal of another answer": _sealed_and_revealing,
    # PROTOCOL §16: proposers below trust 0.6 (everyone here, at 0.5) stamp.
    "a proposal without the work the space asks": lambda w: w.node.set_config(
        admission_trust_below="0.6", admission_difficulty=8, key=w.team.admin
    ),
}


@pytest.fixture
def world(team: Team) -> World:
    return World(team, team.client())


@pytest.mark.parametrize("name", list(CASES))
def test_each_refusal_has_its_kind_and_status(world: World, name: str) -> None:
    kind, case = CASES[name]
    if name in SETUP:
        SETUP[name](world)
    before = world.node.space()["head"]
    with pytest.raises(SynodError) as caught:
        case(world)
    error = caught.value
    assert (error.kind, error.status) == (kind, STATUS[kind]), error
    assert error.message and error.kind in ERROR_KINDS
    # A refused message is never appended.
    assert world.node.space()["head"] == before


def test_every_kind_but_unavailable_is_covered() -> None:
    covered = {kind for kind, _ in CASES.values()}
    assert covered == set(ERROR_KINDS) - {"unavailable"}


def test_an_answer_that_is_not_the_nodes_json_is_an_http_error() -> None:
    import httpx

    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))
    with Client("http://node.invalid", transport=transport) as node:
        with pytest.raises(SynodError) as caught:
            node.space()
    assert (caught.value.kind, caught.value.status) == ("http_error", 502)
    assert "bad gateway" in caught.value.message
