"""Against a real ``synod serve``: Python signs, Rust verifies; proposals are
approved, escalated and decided by reviewers; outcomes move trust."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from synod import Client, Keypair, SignedMessage, SynodError, reviewer_keypair, verify_chain

from .conftest import Server, Team, run_cli
from .helpers import wait_for

S = 1_000_000


def test_reads_describe_the_space(server: Server, admin_client: Client) -> None:
    info = admin_client.space(state_hash=True)
    assert info["space"].startswith("space-")
    assert info["config"]["mode"] == "closed"
    assert info["config"]["policies"]["critical"]["human_required"] is True
    assert info["head"]["next_index"] == 1 and len(info["state_hash"]) == 64
    assert admin_client.health()["status"] == "ok"
    assert "synod" in admin_client.metrics()
    assert "/v1/events" in admin_client.openapi()["paths"]
    agents = admin_client.agents()
    assert agents["total"] == 1 and agents["agents"][0]["roles"] == ["admin"]
    me = admin_client.agent()
    assert me["id"] == server.admin().did and me["trust_history"] == []


def test_registration_grants_and_listing(team: Team) -> None:
    with team.client(team.alice) as alice:
        listed = alice.agents()
        names = [a["name"] for a in listed["agents"]]
        assert names == ["admin", "alice", "bob", "carol", "oscar", "rita"]
        assert alice.agents(limit=2, after=1)["agents"][0]["name"] == "alice"
        mine = alice.agent()
        assert mine["granted_authorities"] == {"fraud.*": "1"} and mine["roles"] == ["agent"]
        # A second registration needs a higher seq; the client finds it.
        receipt = alice.register("alice-2", model="m1")
        assert receipt["agent"] == team.alice.did
        assert alice.agent()["seq"] == 2 and alice.agent()["name"] == "alice-2"


def test_a_proposal_is_approved_by_the_votes(team: Team) -> None:
    """Alice proposes at 0.9, bob endorses at 1, the proposal closes approved
    early and carol is too late. Log-odds weighting (the default) at trust
    0.5: both confidences count as 0.8 (ln 4), so E = (1 + 0.8)·ln 4 and
    carol's 0.5·ln 4 cannot bring it below ln 4."""
    with team.client(team.alice) as alice:
        receipt = alice.propose(
            "fraud.detection", "block_card", "Block card 4411", 0.9, payload={"card": 4411, "score": 0.97}
        )
        pid = receipt["id"]
        assert receipt["status"] == "open" and len(pid) == 64
        signed = SignedMessage.from_dict(alice.proposal(pid)["message"])
        assert signed.id == pid and signed.verify() and signed.signer == team.alice.did
        answer = alice.respond(pid, "endorse", 1, "card seen in two countries", key=team.bob)
        assert answer["status"] == "approved"
        assert answer["tally"] == {"endorse": "2.4953298500142", "challenge": "0", "voted": "0.9", "potential": "1.15"}
        # Where an agent stands: carol was in the electorate and never answered.
        carol = alice.proposal(pid, agent=team.carol.did)["member"]
        assert carol["eligible"] and not carol["responded"] and carol["influence"] == "0.25"
        assert alice.proposal(pid, agent=team.oscar.did)["member"]["eligible"] is False
        detail = alice.proposal(pid)
        assert detail["status"] == "approved" and detail["closure"] is not None
        assert detail["closure"]["cause"] == "early" and detail["closure"]["verdict"] == "approved"
        assert detail["action"]["payload"] == {"card": 4411, "score": 0.97}
        assert [(r["name"], r["stance"], r["reasoning"]) for r in detail["responses"]] == [
            ("bob", "endorse", "card seen in two countries")
        ]
        with pytest.raises(SynodError) as late:
            alice.respond(pid, "challenge", 0.7, key=team.carol)
        assert late.value.kind == "proposal_closed" and late.value.status == 409
        assert [p["id"] for p in alice.proposals(status="approved", domain="fraud.*")["proposals"]] == [pid]
        assert alice.proposals(status="approved", domain="credit.*")["proposals"] == []


def _contested(team: Team, client: Client) -> str:
    """Alice proposes at 0.6, bob challenges at 0.9, carol endorses at 0.5:
    E = logit(0.6), C = 0.8·ln 4 (0.9 capped at 0.8), and carol's 0.5 is no
    evidence; neither side reaches ln 4: escalated as contested."""
    pid = client.propose("fraud.detection", "freeze_account", "Freeze account 17", "0.6", key=team.alice)["id"]
    assert client.respond(pid, "challenge", "0.9", "normal pattern", key=team.bob)["status"] == "open"
    answer = client.respond(pid, "endorse", "0.5", "unsure", key=team.carol)
    assert answer["status"] == "escalated"
    return pid


def test_a_contested_proposal_escalates_and_a_reviewer_token_decides_it(team: Team) -> None:
    with team.client() as node:
        pid = _contested(team, node)
        detail = node.proposal(pid)
        assert detail["reason"] == "contested"
        package = detail["package"]
        assert [p["stance"] for p in package["positions"]] == ["endorse", "challenge", "endorse"]
        assert package["tally"] == {
            "endorse": "0.405465108108",
            "challenge": "1.1090354888952",
            "voted": "1.15",
            "potential": "1.15",
        }
        escalations = node.escalations()
        assert escalations["total"] == 1 and escalations["escalations"][0]["id"] == pid
        # The token from `synod reviewer add`, over bearer auth.
        decided = node.decide(pid, "approve", "checked with the customer", reviewer_token=team.reviewer_token)
        assert decided["status"] == "approved_by_human"
        assert any(e["type"] == "human_decided" and e["reviewer"] == team.reviewer_did for e in decided["effects"])
        assert node.proposal(pid)["package"]["decisions"] == [
            {"reviewer": team.reviewer_did, "decision": "approve", "note": "checked with the customer"}
        ]
        assert node.escalations()["total"] == 0
        with pytest.raises(SynodError) as again:
            node.decide(pid, "reject", reviewer_token=team.reviewer_token)
        assert again.value.kind == "invalid_state"


def test_a_python_reviewer_token_works_in_the_cli_and_signed_decisions(team: Team, admin_client: Client) -> None:
    token, did = admin_client.add_reviewer("ruth")
    assert reviewer_keypair(token).did == did
    assert "reviewer" in admin_client.agent(did)["roles"]
    first = _contested(team, admin_client)
    out = run_cli("review", first, "reject", "--token", token, "--node", team.server.url, "--json")
    assert json.loads(out.stdout)["status"] == "rejected_by_human"
    # The same reviewer signing its own decision message instead.
    second = _contested(team, admin_client)
    decided = admin_client.decide(second, "approve", "signed", key=reviewer_keypair(token))
    assert decided["status"] == "approved_by_human"
    with pytest.raises(SynodError) as bad:
        admin_client.decide(second, "approve", reviewer_token="synod_rt_" + "A" * 43)
    assert bad.value.kind == "unauthorized" and bad.value.status == 401


def _trust_after(t: int, forecast: int, outcome: int, rate: int) -> int:
    """PROTOCOL §8 in integers (millionths)."""
    miss = forecast - outcome
    g12 = S * S - 2 * miss * miss
    next18 = t * S * S + rate * (g12 - t * S)
    return max(0, min(next18 // (S * S), S))


def _decimal(micros: int) -> str:
    whole, frac = divmod(micros, S)
    return f"{whole}.{frac:06d}".rstrip("0").rstrip(".") if frac else str(whole)


def test_an_outcome_moves_trust_as_the_rule_says(team: Team) -> None:
    """PROTOCOL §8's worked example: alice proposes at 0.9, bob endorses at
    0.8, carol challenges at 0.7, the action fails."""
    with team.client() as node:
        pid = node.propose("fraud.detection", "block_card", "Block card 9", "0.9", stakes="critical", key=team.alice)["id"]
        node.respond(pid, "endorse", "0.8", key=team.bob)
        assert node.respond(pid, "challenge", "0.7", key=team.carol)["status"] == "escalated"
        node.decide(pid, "approve", reviewer_token=team.reviewer_token)
        with pytest.raises(SynodError) as barred:
            node.report_outcome(pid, result="failure", key=team.bob)
        assert barred.value.kind == "wrong_role"
        receipt = node.report_outcome(pid, result="failure", key=team.oscar)
        updates = [e for e in receipt["effects"] if e["type"] == "trust_updated"]
        assert [u["agent"] for u in updates] == [team.alice.did, team.bob.did, team.carol.did]
        rate = 50_000
        expected = {
            team.alice.did: _trust_after(500_000, 900_000, 0, rate),
            team.bob.did: _trust_after(500_000, 800_000, 0, rate),
            team.carol.did: _trust_after(500_000, 300_000, 0, rate),
        }
        assert [_decimal(v) for v in expected.values()] == ["0.444", "0.461", "0.516"]
        for update in updates:
            assert update["before"] == "0.5" and update["after"] == _decimal(expected[update["agent"]])
        for did, micros in expected.items():
            agent = node.agent(did)
            assert agent["trust"] == {"fraud.detection": _decimal(micros)}
            assert agent["outcomes"] == 1
            # The node records trust history before it answers the outcome.
            history = node.agent(did)["trust_history"]
            assert [(p["domain"], p["trust"], p["index"]) for p in history] == [
                ("fraud.detection", _decimal(micros), receipt["index"])
            ]
        assert node.proposal(pid)["outcome"] == {"score": "0", "reporter": team.oscar.did, "index": receipt["index"]}
        with pytest.raises(SynodError) as twice:
            node.report_outcome(pid, score=0.5, key=team.oscar)
        assert twice.value.kind == "duplicate"


def test_the_log_export_chains_and_python_verifies_every_rust_signature(team: Team) -> None:
    with team.client() as node:
        _contested(team, node)
        lines = node.log()
        assert verify_chain(lines) == node.space()["head"]["last_hash"]
        assert len(lines) == node.space()["head"]["next_index"]
        assert all(SignedMessage.from_dict(l["message"]).verify() for l in lines if l["message"])
        assert node.log(from_index=3, limit=2)[0]["index"] == 3
        # The genesis and the reviewer's registration were signed by Rust.
        assert lines[0]["message"] is not None and lines[0]["message"]["signer"] == team.admin.did


def test_the_cli_signs_with_a_key_python_wrote_and_python_with_one_the_cli_made(
    team: Team, admin_client: Client, tmp_path: Path
) -> None:
    py_key = Keypair.generate()
    py_key.save(tmp_path / "py.json")
    admin_client.grant(py_key.did, authorities={"fraud.*": "0.2"}, roles=["agent"])
    did = run_cli("keygen", "--out", str(tmp_path / "rust.json")).stdout.strip()
    admin_client.grant(did, authorities={"fraud.*": "0.3"}, roles=["agent"])
    out = run_cli(
        "propose", "--domain", "fraud.review", "--kind", "review", "--summary", "from the CLI",
        "--confidence", "0.7", "--key", str(tmp_path / "py.json"), "--node", team.server.url, "--json",
    )
    pid = json.loads(out.stdout)["id"]
    assert admin_client.proposal(pid)["proposer"] == py_key.did
    rust_key = Keypair.load(tmp_path / "rust.json")
    assert admin_client.respond(pid, "abstain", 0, "no view", key=rust_key)["status"] == "open"
    assert [r["agent"] for r in admin_client.proposal(pid)["responses"]] == [did]


def test_supersede_and_policy_overrides(team: Team) -> None:
    with team.client(team.alice) as alice:
        first = alice.propose("fraud.detection", "block_card", "v1", 0.7, stakes="high")["id"]
        tighter = {"quorum": "0.9", "human_required": True}
        second = alice.propose(
            "fraud.detection", "block_card", "v2", 0.7, stakes="high", supersedes=first, policy=tighter
        )
        assert any(e["type"] == "proposal_superseded" and e["by"] == second["id"] for e in second["effects"])
        detail = alice.proposal(second["id"])
        assert detail["supersedes"] == first and detail["policy"]["quorum"] == "0.9"
        assert detail["policy"]["human_required"] is True
        assert alice.proposal(first)["status"] == "superseded"
        assert alice.proposal(first)["superseded_by"] == second["id"]


def test_config_changes_through_the_admin(admin_client: Client) -> None:
    receipt = admin_client.set_config(trust_learning_rate=0.1, max_open_per_agent=5)
    assert receipt["effects"] == [{"type": "config_changed", "seq": 1}]
    config = admin_client.space()["config"]
    assert config["trust_learning_rate"] == "0.1" and config["max_open_per_agent"] == 5
    assert admin_client.space()["config_seq"] == 1


def test_an_agent_survives_a_node_restart(team: Team) -> None:
    with team.client(team.alice) as alice:
        pid = alice.propose("fraud.detection", "block_card", "before restart", 0.6, stakes="critical")["id"]
        team.server.restart()
        assert alice.proposal(pid)["status"] == "open"
        assert alice.respond(pid, "endorse", 0.6, key=team.bob)["status"] == "open"


def test_a_question_is_answered_by_belief_consensus(team: Team) -> None:
    """PROTOCOL §15 end to end: a question with options, distributions from
    Python, the log pool adopting the leader, a zero that does not veto it,
    the outcome naming the right option, and trust by the quadratic score."""
    with team.client() as node:
        pid = node.ask(
            "fraud.review",
            "choose_queue",
            "Which queue handles case 77?",
            ["manual", "auto", "hold"],
            distribution={"manual": "0.8", "auto": "0.1", "hold": "0.1"},
            stakes="low",
            key=team.alice,
        )["id"]
        detail = node.proposal(pid)
        assert detail["method"] == "belief" and detail["options"] == ["manual", "auto", "hold"]
        assert detail["distribution"] == {"manual": "0.8", "auto": "0.1", "hold": "0.1"}
        with pytest.raises(SynodError) as wrong_sum:
            node.believe(pid, {"manual": "0.5", "auto": "0.4", "hold": "0"}, key=team.bob)
        assert wrong_sum.value.kind == "out_of_range"
        with pytest.raises(SynodError) as a_stance:
            node.respond(pid, "endorse", "0.9", key=team.bob)
        assert a_stance.value.kind == "malformed"
        node.believe(pid, {"manual": 0.7, "auto": 0.2, "hold": 0.1}, "the queue is short", key=team.bob)
        # carol rules manual out; the floor (0.01) keeps that from a veto:
        # manual still leads, but below 0.6, so a human decides.
        done = node.believe(pid, {"manual": "0", "auto": "0.9", "hold": "0.1"}, key=team.carol)
        assert done["status"] == "escalated"
        closed = next(e for e in done["effects"] if e["type"] == "proposal_closed")
        assert closed["reason"] == "contested" and closed["pool"]["leader"] == "manual"
        assert "choice" not in closed
        package = node.proposal(pid)["package"]
        assert package["belief"]["leader"] == "manual" and package["belief"]["choice"] is None
        assert [p.get("divergence") is not None for p in package["positions"]] == [True, True, True]
        with pytest.raises(SynodError) as no_option:
            node.decide(pid, "approve", reviewer_token=team.reviewer_token)
        assert no_option.value.kind == "malformed"
        decided = node.decide(pid, "approve", "manual is right here", option="manual", reviewer_token=team.reviewer_token)
        assert decided["status"] == "approved_by_human"
        detail = node.proposal(pid)
        assert detail["choice"] == "manual"
        assert [r["distribution"]["auto"] for r in detail["responses"]] == ["0.2", "0.9"]
        receipt = node.report_outcome(pid, option="manual", key=team.oscar)
        assert node.proposal(pid)["outcome"] == {"option": "manual", "reporter": team.oscar.did, "index": receipt["index"]}
        after = {e["agent"]: e["after"] for e in receipt["effects"] if e["type"] == "trust_updated"}
        # g = 1 - sum (p - y)^2: alice 0.94 -> 0.522, bob 0.86 -> 0.518,
        # carol -0.82 -> 0.434 (from 0.5, eta 0.05).
        assert after == {team.alice.did: "0.522", team.bob.did: "0.518", team.carol.did: "0.434"}


def test_a_sealed_vote_commits_then_reveals(team: Team) -> None:
    """PROTOCOL §18 end to end: commitments hide the answers until the
    commit deadline; nothing is revealed or closed before it; reveals count
    after it, and a reveal that does not match its commitment is refused."""
    with team.client() as node:
        # Critical stakes never close early: both reveals are counted.
        pid = node.propose(
            "fraud.detection", "block_card", "Block card 42", 0.9, stakes="critical", commit_ms=1_500, key=team.alice
        )["id"]
        bob = node.commit(pid, "endorse", 1, "the pattern matches", key=team.bob)
        carol = node.commit(pid, "endorse", "0.8", key=team.carol)
        assert [e["type"] for e in bob.receipt["effects"]] == ["committed"]
        detail = node.proposal(pid)
        assert detail["status"] == "open" and detail["responses"] == []
        assert detail["sealed"]["phase"] == "commit"
        assert detail["sealed"]["committed"] == [team.bob.did, team.carol.did]
        with pytest.raises(SynodError) as early:
            node.reveal(bob, key=team.bob)
        assert early.value.kind == "wrong_phase"
        with pytest.raises(SynodError) as twice:
            node.commit(pid, "challenge", 1, key=team.bob)
        assert twice.value.kind == "duplicate"
        deadline = node.proposal(pid)["sealed"]["commit_deadline"]
        while node.now() < deadline + 300:
            time.sleep(0.1)
        assert node.proposal(pid)["sealed"]["phase"] == "reveal"
        with pytest.raises(SynodError) as changed:
            node.reveal(replace(carol, body={**carol.body, "stance": "challenge"}), key=team.carol)
        assert changed.value.kind == "bad_reveal"
        with pytest.raises(SynodError) as stolen:
            node.reveal(bob, key=team.carol)
        assert stolen.value.kind == "bad_reveal"
        assert node.reveal(bob, key=team.bob)["status"] == "open"
        done = node.reveal(carol, key=team.carol)
        closed = next(e for e in done["effects"] if e["type"] == "proposal_closed")
        assert (closed["status"], closed["reason"], closed["cause"]) == ("escalated", "stakes", "all_responded")
        detail = node.proposal(pid)
        assert [r["stance"] for r in detail["responses"]] == ["endorse", "endorse"]
        assert detail["sealed"]["unrevealed"] == []


def test_an_open_question_clusters_answers_and_a_reviewer_adopts_one(team: Team) -> None:
    """PROTOCOL §19 end to end: free answers normalised and clustered, a
    leader below the threshold escalates, a reviewer adopts an answer, the outcome
    names the right answer and scores each answer at its confidence.
    (Ties between clusters are tested in the core and the vectors.)"""
    with team.client() as node:
        pid = node.ask_open("fraud.review", "estimate", "Which country is card 77 used in?", stakes="low", key=team.alice)["id"]
        with pytest.raises(SynodError) as a_stance:
            node.respond(pid, "endorse", "0.9", key=team.bob)
        assert a_stance.value.kind == "malformed"
        node.answer(pid, "Portugal", "0.9", "the last three payments", key=team.bob)
        done = node.answer(pid, " SPAIN ", "0.6", key=team.carol)
        closed = next(e for e in done["effects"] if e["type"] == "proposal_closed")
        # bob's weight (0.8) beats carol's (0.5): portugal leads with
        # 0.8 / 1.3 = 0.615384 >= 0.6 at low stakes.
        assert (closed["status"], closed["choice"]) == ("approved", "portugal")
        assert closed["clusters"]["agreement"] == "0.615384"
        assert [c["answer"] for c in closed["clusters"]["clusters"]] == ["portugal", "spain"]
        detail = node.proposal(pid)
        assert [r["answer"] for r in detail["responses"]] == ["portugal", "spain"]
        receipt = node.report_outcome(pid, answer="portugal", key=team.oscar)
        after = {e["agent"]: e["after"] for e in receipt["effects"] if e["type"] == "trust_updated"}
        # right at 0.9: g = 0.98, 0.5 + 0.05 (0.98 - 0.5) = 0.524; wrong at
        # 0.6: g = 0.28, 0.489.
        assert after == {team.bob.did: "0.524", team.carol.did: "0.489"}
        # At medium stakes 0.615384 is below 0.7: contested, and a reviewer
        # adopts an answer (normalised).
        tie = node.ask_open("fraud.review", "estimate", "Which queue?", stakes="medium", key=team.alice)["id"]
        node.answer(tie, "manual", "0.7", key=team.bob)
        done = node.answer(tie, "auto", "0.7", key=team.carol)
        assert done["status"] == "escalated"
        decided = node.decide(tie, "approve", "manual it is", answer=" Manual ", reviewer_token=team.reviewer_token)
        assert decided["status"] == "approved_by_human"
        assert node.proposal(tie)["choice"] == "manual"


def test_proof_of_work_admission_is_minted_by_the_clients(team: Team, admin_client: Client, tmp_path: Path) -> None:
    """PROTOCOL §16: once the space asks proposers below trust 0.6 to stamp
    at 12 bits, a bare proposal is refused, while this package and the CLI
    mint the stamp themselves, bound to what they sign."""
    from synod import proposal_body
    from synod.stamp import meets, stamp_base

    admin_client.set_config(admission_trust_below="0.6", admission_difficulty=12)
    config = admin_client.space()["config"]
    assert (config["admission_trust_below"], config["admission_difficulty"]) == ("0.6", 12)
    with team.client() as node:
        bare = node.sign(
            "proposal",
            proposal_body(domain="fraud.detection", kind="x", summary="bare", confidence="0.5", stakes="low",
                          deadline=node.now() + 60_000),
            key=team.alice,
        )
        with pytest.raises(SynodError) as refused:
            node.submit(bare)
        assert refused.value.kind == "insufficient_work" and refused.value.status == 422
        pid = node.propose("fraud.detection", "block_card", "Block card 12", "0.7", stakes="low", key=team.alice)["id"]
        body = node.proposal(pid)["message"]["body"]
        assert meets(stamp_base(team.alice.did, body), body["stamp"], 12)
        # A question is stamped the same way.
        qid = node.ask("fraud.review", "pick", "Which queue?", ["a", "b"], stakes="low", key=team.alice)["id"]
        assert "stamp" in node.proposal(qid)["message"]["body"]
    key_file = team.bob.save(tmp_path / "bob.key")
    out = run_cli(
        "propose", "--domain", "fraud.detection", "--kind", "block_card", "--summary", "Block card 13",
        "--confidence", "0.6", "--stakes", "low", "--node", team.server.url, "--key", str(key_file), "--json",
    )
    cid = json.loads(out.stdout)["id"]
    assert "admission stamp of 12 bits" in out.stderr
    with team.client() as node:
        body = node.proposal(cid)["message"]["body"]
        assert meets(stamp_base(team.bob.did, body), body["stamp"], 12)
