"""Stake-weighted validation and selection (PROTOCOL §20) through the
Python client against the real node: granted stakes, a committee whose
draw is redone from the log, outsiders refused, round proposers."""

from __future__ import annotations

import hashlib
import time

import pytest

from synod import Client, SynodError

from .conftest import Server, admit


def seed(*parts: bytes) -> bytes:
    h = hashlib.sha256(b"synod/lottery/v1")
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.digest()


def draw(s: bytes, stakes: list[int], k: int) -> list[int]:
    """§17, written again here: k draws without replacement."""
    drawn: list[int] = []
    total = sum(stakes)
    for j in range(k):
        if total == 0:
            break
        limit = ((2**128 - 1) // total) * total
        attempt = 0
        while True:
            x = int.from_bytes(hashlib.sha256(s + j.to_bytes(4, "big") + attempt.to_bytes(4, "big")).digest()[:16], "big")
            if x < limit:
                break
            attempt += 1
        r, running = x % total, 0
        for i, st in enumerate(stakes):
            if i in drawn:
                continue
            running += st
            if r < running:
                drawn.append(i)
                total -= st
                break
    return drawn


def test_a_committee_decides_by_stake_and_outsiders_are_refused(server: Server, admin_client: Client) -> None:
    admin_client.set_config(stake="granted", min_committee=2)
    keys = []
    for i in range(6):
        key = admit(admin_client, f"holder-{i}", {"ops.*": "1"}, ["agent"])
        admin_client.grant(key.did, authorities={"ops.*": "1"}, roles=["agent"], stake=i + 1)
        keys.append(key)
    with Client(server.url, key=keys[0]) as c:
        receipt = c.propose("ops.deploy", "deploy", "Deploy 3.1", 0.9, stakes="low", method="stake", committee=2)
        pid = receipt["id"]
        detail = c.proposal(pid)
        assert detail["committee"] == 2 and detail["electorate"]["members"] == 2
        entry = next(line for line in c.log() if line["effects"] and line["effects"][-1].get("proposal") == pid
                     and line["effects"][-1]["type"] in ("proposal_opened", "proposal_closed"))
        picked = sorted(draw(seed(b"synod/committee", bytes.fromhex(entry["hash"])), [(i + 1) * 10**12 for i in range(6)], 2))
        assert int(detail["tally"]["potential"]) == sum(i + 1 for i in picked)
    outsider = next(i for i in range(1, 6) if i not in picked)
    with Client(server.url, key=keys[outsider]) as c:
        with pytest.raises(SynodError) as refused:
            c.respond(pid, "endorse", 0.9, "not on it")
        assert refused.value.kind == "not_eligible"
    for i in picked:
        if i == 0:
            continue
        with Client(server.url, key=keys[i]) as c:
            c.respond(pid, "endorse", 0.9, "on the committee")
    assert admin_client.proposal(pid)["status"] == "approved"

    admin_client.set_config(proposer_round_ms=86_400_000)
    round_ = admin_client.round_proposer("ops.deploy")
    assert round_["enabled"] is True
    s = seed(b"synod/proposer", b"ops.deploy", round_["round"].to_bytes(8, "big"), bytes.fromhex(round_["anchor"]))
    assert s.hex() == round_["seed"]
    stakes = [int(c["stake"]) * 10**12 for c in round_["candidates"]]
    assert round_["proposer"] == round_["candidates"][draw(s, stakes, 1)[0]]["agent"]
    other = next(k for k in keys if k.did != round_["proposer"])
    with Client(server.url, key=other) as c:
        with pytest.raises(SynodError) as refused:
            c.propose("ops.deploy", "deploy", "Not my round", 0.9, stakes="low")
        assert refused.value.kind == "not_eligible"


def test_sealed_stake_and_committee_proposals(server: Server, admin_client: Client) -> None:
    """Sealed responses (PROTOCOL §18) with stake and committees: nothing
    closes in the commit phase even when the proposer alone holds more than
    two thirds; the end of the phase applies the stake rule; only a
    committee's members commit; a hierarchy proposal cannot be sealed and an
    open question has no committee."""
    admin_client.set_config(stake="granted", min_committee=2)
    keys = []
    for i, stake in enumerate([7, 1, 1, 1]):
        key = admit(admin_client, f"sealer-{i}", {"ops.*": "1"}, ["agent"])
        admin_client.grant(key.did, authorities={"ops.*": "1"}, roles=["agent"], stake=stake)
        keys.append(key)
    with Client(server.url, key=keys[0]) as c:
        pid = c.propose("ops.deploy", "deploy", "Deploy 4.0 sealed", 0.9, stakes="low", method="stake", commit_ms=1_500)["id"]
        assert c.proposal(pid)["status"] == "open"
        with Client(server.url, key=keys[1]) as one:
            one.commit(pid, "challenge", 0.9, "no")
        assert c.proposal(pid)["status"] == "open"
        deadline = c.proposal(pid)["sealed"]["commit_deadline"]
        while c.now() < deadline + 300:
            time.sleep(0.1)
        # 7 of 10 endorse: more than two thirds whatever the reveal says.
        assert c.proposal(pid)["status"] == "approved"

        with pytest.raises(SynodError) as hierarchy:
            c.propose("ops.deploy", "deploy", "Sealed hierarchy", 0.9, method="hierarchy", commit_ms=1_000)
        assert hierarchy.value.kind == "malformed"
        with pytest.raises(SynodError) as open_committee:
            c.propose("ops.deploy", "estimate", "How many nodes?", 1, stakes="low", method="open", committee=2)
        assert open_committee.value.kind == "malformed"

        receipt = c.propose(
            "ops.deploy", "deploy", "Deploy 4.1 sealed", 0.9, stakes="low", method="stake", committee=2, commit_ms=60_000
        )
        pid = receipt["id"]
        entry = next(line for line in c.log() if line["effects"] and line["effects"][-1].get("proposal") == pid
                     and line["effects"][-1]["type"] == "proposal_opened")
        picked = draw(seed(b"synod/committee", bytes.fromhex(entry["hash"])), [s * 10**12 for s in [7, 1, 1, 1]], 2)
    outsider = next(i for i in range(1, 4) if i not in picked)
    with Client(server.url, key=keys[outsider]) as c:
        with pytest.raises(SynodError) as refused:
            c.commit(pid, "endorse", 0.9, "not on it")
        assert refused.value.kind == "not_eligible"
    member = next((i for i in picked if i != 0), None)
    if member is not None:
        with Client(server.url, key=keys[member]) as c:
            c.commit(pid, "endorse", 0.9, "on it")
        assert admin_client.proposal(pid)["sealed"]["committed"] == [keys[member].did]
