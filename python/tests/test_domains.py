"""Domain patterns and authority (PROTOCOL §5.0), checked against an open
space on the real node: whom the agent loop thinks a member is whom the node
lets respond."""

from __future__ import annotations

from typing import Any

import pytest

from synod import Client, Keypair, SynodError
from synod.domains import authority_in, is_pattern, micros, pattern_matches


def _agent(granted: dict[str, str], declared: dict[str, str]) -> Any:
    return {"granted_authorities": granted, "declared_authorities": declared}


def _config(mode: str) -> Any:
    return {"mode": mode, "open_authority_cap": "0.5"}


def test_patterns_match_as_the_protocol_says() -> None:
    assert pattern_matches("fraud.*", "fraud") and pattern_matches("fraud.*", "fraud.detection")
    assert not pattern_matches("fraud.*", "fraudulent") and not pattern_matches("fraud.*", "credit.fraud")
    assert pattern_matches("*", "x.y") and pattern_matches("a.b", "a.b") and not pattern_matches("a.b", "a.b.c")
    assert all(is_pattern(p) for p in ("*", "fraud", "fraud.*", "a-b.c_d"))
    assert not any(is_pattern(p) for p in ("**", "fraud.*.x", ".*", "fraud*", "Fraud.*"))
    assert micros("0.85") == 850_000 and micros("1") == 1_000_000 and micros("0.000001") == 1


def test_the_most_specific_pattern_wins_even_at_zero() -> None:
    agent = _agent({"fraud.*": "0.9", "fraud.review": "0", "*": "0.1"}, {})
    closed = _config("closed")
    assert authority_in(agent, "fraud.detection", closed) == 900_000
    assert authority_in(agent, "fraud.review", closed) == 0
    assert authority_in(agent, "credit", closed) == 100_000


def test_declarations_count_capped_only_in_open_spaces() -> None:
    agent = _agent({"ops.*": "0.2"}, {"ops.*": "0.9", "ops.deploy": "0.8", "hr.*": "0.7"})
    assert authority_in(agent, "ops.deploy", _config("closed")) == 200_000
    assert authority_in(agent, "hr.pay", _config("closed")) == 0
    opened = _config("open")
    assert authority_in(agent, "ops.deploy", opened) == 500_000  # declared 0.8, capped, more specific
    assert authority_in(agent, "ops.other", opened) == 200_000  # the grant overrides the same pattern
    assert authority_in(agent, "hr.pay", opened) == 500_000


def test_in_an_open_space_self_declared_authority_decides_membership(admin_client: Client) -> None:
    admin_client.set_config(mode="open")
    proposer = Keypair.generate()
    voter = Keypair.generate()
    node = Client(admin_client.base_url)
    node.register("proposer", authorities={"ops.*": "0.5"}, key=proposer)
    node.register("voter", authorities={"ops.*": "0.9", "ops.secret": "0"}, key=voter)
    node.register("other", authorities={"ops.*": "0.3"}, key=Keypair.generate())
    me = node.agent(voter.did)
    config = node.space()["config"]
    assert "agent" in me["roles"] and me["granted_authorities"] == {}
    deploy = node.propose("ops.deploy", "deploy", "deploy v2", 0.6, stakes="critical", key=proposer)
    secret = node.propose("ops.secret", "rotate", "rotate keys", 0.6, stakes="critical", key=proposer)
    assert authority_in(me, "ops.deploy", config) == 500_000
    assert node.respond(deploy["id"], "endorse", 0.6, key=voter)["status"] == "open"
    assert authority_in(me, "ops.secret", config) == 0
    with pytest.raises(SynodError) as refused:
        node.respond(secret["id"], "endorse", 0.6, key=voter)
    assert refused.value.kind == "not_eligible"
    # Newcomers without a grant start at the open space's initial trust.
    assert node.agent(voter.did)["trust_prior"] == "0.1"
