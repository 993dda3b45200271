"""The official Python MCP client (package ``mcp``) drives synod's MCP server:
over stdio (``synod mcp``, bound to a key file) and over streamable HTTP
(``/mcp`` on ``synod serve``, bound to an agent token). In each round one
agent takes part through MCP and the others through this package: one
proposal approved by the votes, one escalated and then decided by a human."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from synod import Client, agent_keypair

from .conftest import Team, run_cli, synod_bin

TOOLS = {
    "whoami",
    "register",
    "list_open_proposals",
    "read_proposal",
    "propose",
    "respond",
    "check_status",
    "report_outcome",
    "who_may_propose",
    "decide_as_executive",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def field(obj: Any, snake: str, camel: str) -> Any:
    """A field of an mcp model: snake_case in mcp 2, camelCase in mcp 1 (the
    version LangChain's and OpenAI's adapters install)."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    """Calls a tool and returns its JSON answer; fails on a tool error."""
    result = await session.call_tool(tool, arguments)
    text = result.content[0].text  # type: ignore[union-attr]
    assert not field(result, "is_error", "isError"), f"{tool} failed: {text}"
    return json.loads(text)


async def call_error(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Calls a tool that must fail and returns its error object."""
    result = await session.call_tool(tool, arguments)
    text = result.content[0].text  # type: ignore[union-attr]
    assert field(result, "is_error", "isError"), f"{tool} should have failed: {text}"
    error: dict[str, Any] = json.loads(text)
    return error


@asynccontextmanager
async def stdio_session(node: str, key_file: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=synod_bin(), args=["mcp", "--node", node, "--key", str(key_file)])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(node: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(f"{node}/mcp", http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@pytest.mark.anyio
async def test_over_stdio_an_mcp_agent_proposes_and_a_python_agent_approves(team: Team, tmp_path: Path) -> None:
    key_file = team.alice.save(tmp_path / "alice.key")
    node = team.server.url
    with anyio.fail_after(60):
        async with stdio_session(node, key_file) as session:
            listed = await session.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            respond = next(t for t in listed.tools if t.name == "respond")
            assert "abstain" in (respond.description or "").lower()
            assert "audit log" in (respond.description or "")
            assert "confidence" in field(respond, "input_schema", "inputSchema")["properties"]

            me = await call(session, "whoami")
            assert me["agent"] == team.alice.did and me["registered"] is True

            proposed = await call(
                session,
                "propose",
                domain="fraud.detection",
                kind="block_card",
                summary="Block card 4411",
                payload={"card": 4411},
                confidence=0.9,
                stakes="medium",
            )
            pid = proposed["id"]
            assert proposed["status"] == "open" and proposed["signed_by"] == team.alice.did
            mine = await call(session, "list_open_proposals")
            assert [p["id"] for p in mine["proposals"]] == [pid] and mine["your_domains"] == ["fraud.*"]
            assert (await call(session, "list_open_proposals", domain="credit.*"))["proposals"] == []

            # Bob answers through the Python package; PROTOCOL §6.3's example
            # closes approved early.
            with Client(node, key=team.bob) as bob:
                assert bob.respond(pid, "endorse", 1, "card seen in two countries")["status"] == "approved"

            status = await call(session, "check_status", proposal_id=pid)
            assert status["status"] == "approved" and status["responses"] == 1
            detail = await call(session, "read_proposal", proposal_id=pid)
            assert detail["action"]["payload"] == {"card": 4411}
            assert detail["member"]["proposer"] is True and detail["member"]["agent"] == team.alice.did
            assert [r["agent"] for r in detail["responses"]] == [team.bob.did]

            # Bad input comes back as a tool error the model can read.
            bad = await call_error(session, "respond", proposal_id="nope", stance="endorse", confidence=0.5, reasoning="x")
            assert bad["error"] == "malformed"
            closed = await call_error(session, "respond", proposal_id=pid, stance="challenge", confidence=0.5, reasoning="late")
            assert closed["error"] in ("proposal_closed", "not_eligible")

    # What MCP signed is in the audit log, verifiable by `synod audit verify`.
    export = tmp_path / "log.jsonl"
    run_cli("log", "export", "--node", node, "--out", str(export))
    assert json.loads(run_cli("audit", "verify", str(export), "--json").stdout)["entries"] > 0


@pytest.mark.anyio
async def test_over_http_a_token_agent_challenges_and_a_human_decides(team: Team) -> None:
    node = team.server.url
    made = json.loads(run_cli("agent", "token", "--json").stdout)
    token, did = made["token"], made["did"]
    # The package derives the same agent from the token.
    assert agent_keypair(token).did == did
    with Client(node, key=team.admin) as admin:
        admin.grant(did, authorities={"fraud.*": "0.8"}, roles=["agent"])

    with anyio.fail_after(60):
        # Without an agent token nobody gets a session.
        for bad in (None, "Bearer-less", "synod_at_" + "0" * 63):
            with httpx.Client() as raw:
                headers = {"Accept": "application/json, text/event-stream"}
                if bad:
                    headers["Authorization"] = f"Bearer {bad}"
                answer = raw.post(f"{node}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
            assert answer.status_code == 401 and answer.json()["error"] == "unauthorized", answer.text

        async with http_session(node, token) as session:
            registered = await call(session, "register", name="tess", vendor="mcp-test", model="any")
            assert registered["agent"] == did
            me = await call(session, "whoami")
            assert me["agent"] == did and me["record"]["name"] == "tess"

            # Alice proposes through the package; tess challenges through MCP;
            # bob abstains and carol endorses: E = 0.425 against C = 0.36, no
            # margin holds, so it escalates as contested.
            with Client(node) as package:
                pid = package.propose("fraud.detection", "freeze_account", "Freeze account 17", "0.6", key=team.alice)["id"]
                waiting = await call(session, "list_open_proposals")
                assert pid in [p["id"] for p in waiting["proposals"]]
                answer = await call(
                    session, "respond", proposal_id=pid, stance="challenge", confidence="0.9", reasoning="normal pattern"
                )
                assert answer["status"] == "open" and answer["signed_by"] == did
                assert package.respond(pid, "abstain", "0.5", "not my area", key=team.bob)["status"] == "open"
                assert package.respond(pid, "endorse", "0.5", "unsure", key=team.carol)["status"] == "escalated"

                status = await call(session, "check_status", proposal_id=pid)
                assert status["status"] == "escalated" and status["reason"] == "contested"
                package_view = await call(session, "read_proposal", proposal_id=pid)
                positions = {p["agent"]: p["stance"] for p in package_view["package"]["positions"]}
                assert positions[did] == "challenge" and positions[team.carol.did] == "endorse"

                # A human decides it in the inbox's API.
                decided = package.decide(pid, "approve", "checked with the customer", reviewer_token=team.reviewer_token)
                assert decided["status"] == "approved_by_human"
            assert (await call(session, "check_status", proposal_id=pid))["status"] == "approved_by_human"

            # Tess is no oracle: reporting the outcome is refused.
            denied = await call_error(session, "report_outcome", proposal_id=pid, result="failure")
            assert denied["error"] == "wrong_role"
            # The oracle reports it through the package; tess, who challenged
            # at 0.9 an action that turned out right, loses trust (PROTOCOL §8:
            # 0.5 + 0.05 x (1 - 2 x 0.9^2 - 0.5) = 0.444).
            with Client(node, key=team.oscar) as oscar:
                oscar.report_outcome(pid, result="success")
            after = await call(session, "whoami")
            assert after["record"]["trust"] == {"fraud.detection": "0.444"}


@pytest.mark.anyio
async def test_over_stdio_an_mcp_agent_asks_and_answers_a_question(team: Team, tmp_path: Path) -> None:
    """Belief consensus through MCP (PROTOCOL §15): propose with options,
    answer with a distribution, read the pool, report the right option."""
    node = team.server.url
    with anyio.fail_after(60):
        async with stdio_session(node, team.alice.save(tmp_path / "alice.key")) as session:
            missing = await call_error(
                session, "propose", domain="fraud.review", kind="pick", summary="Which queue?", stakes="low"
            )
            assert missing["error"] == "malformed" and "options" in missing["message"]
            asked = await call(
                session,
                "propose",
                domain="fraud.review",
                kind="pick_queue",
                summary="Which queue handles case 9?",
                stakes="low",
                options=["manual", "auto"],
                distribution={"manual": 0.7, "auto": 0.3},
            )
            pid = asked["id"]
        async with stdio_session(node, team.bob.save(tmp_path / "bob.key")) as session:
            both = await call_error(
                session, "respond", proposal_id=pid, stance="endorse", confidence=0.9, reasoning="x"
            )
            assert both["error"] == "malformed"
            await call(session, "respond", proposal_id=pid, distribution={"manual": "0.8", "auto": "0.2"}, reasoning="short queue")
        async with stdio_session(node, team.carol.save(tmp_path / "carol.key")) as session:
            await call(session, "respond", proposal_id=pid, distribution={"manual": 0.6, "auto": 0.4}, reasoning="either")
            status = await call(session, "check_status", proposal_id=pid)
            # Geometric mean of 0.7, 0.8, 0.6 (weights 1, 0.8, 0.5) against
            # that of 0.3, 0.2, 0.4: manual ≈ 0.72 ≥ 0.6 (low stakes).
            assert status["status"] == "approved" and status["choice"] == "manual"
            assert status["options"] == ["manual", "auto"] and status["pool"]["leader"] == "manual"
        async with stdio_session(node, team.oscar.save(tmp_path / "oscar.key")) as session:
            done = await call(session, "report_outcome", proposal_id=pid, option="manual")
            assert sum(e["type"] == "trust_updated" for e in done["effects"]) == 3


@pytest.mark.anyio
async def test_over_stdio_a_proposal_decided_by_stake(team: Team, tmp_path: Path) -> None:
    """Stake-weighted validation through MCP (PROTOCOL §20): every voter
    endorsing is not enough while they hold two thirds of the whole stake or
    less; round proposers are drawn, and others are refused."""
    node = team.server.url
    admin = team.client(team.admin)
    with anyio.fail_after(60):
        async with stdio_session(node, team.alice.save(tmp_path / "alice.key")) as session:
            off = await call(session, "who_may_propose", domain="fraud.detection")
            assert off["enabled"] is False
            bad = await call_error(session, "who_may_propose", domain="Not A Domain")
            assert bad["error"] == "malformed"
            proposed = await call(
                session,
                "propose",
                domain="fraud.detection",
                kind="freeze_account",
                summary="Freeze account 77",
                confidence=0.9,
                stakes="low",
                method="stake",
            )
            pid = proposed["id"]
            # Stakes are influences: alice 0.5, bob 0.4, carol 0.25 (1.15).
            # alice and carol hold 0.75, all who voted but not more than
            # two thirds of the whole: still open.
            with Client(node, key=team.carol) as carol:
                carol.respond(pid, "endorse", 0.6, "seen it before")
            status = await call(session, "check_status", proposal_id=pid)
            assert status["status"] == "open"
            assert status["tally"] == {"endorse": "0.75", "challenge": "0", "voted": "0.75", "potential": "1.15"}
            with Client(node, key=team.bob) as bob:
                assert bob.respond(pid, "endorse", 0.7, "agreed")["status"] == "approved"

            admin.set_config(proposer_round_ms=86_400_000)
            drawn = await call(session, "who_may_propose", domain="fraud.detection")
            assert drawn["enabled"] is True and len(drawn["candidates"]) == 3
            members = {team.alice.did, team.bob.did, team.carol.did}
            assert drawn["proposer"] in members
            if drawn["proposer"] != team.alice.did:
                refused = await call_error(
                    session, "propose", domain="fraud.detection", kind="k", summary="not mine", confidence=0.9, stakes="low"
                )
                assert refused["error"] == "not_eligible"


@pytest.mark.anyio
async def test_over_stdio_an_executive_decides_and_workers_overrule_it(team: Team, tmp_path: Path) -> None:
    """Hierarchical decisions through MCP (PROTOCOL §21): a worker proposes,
    the supervisor evaluates, the executive decides only after it, and two
    of three workers objecting send the decision to humans."""
    node = team.server.url
    admin = team.client(team.admin)
    workers = [team.alice, team.carol, team.oscar]
    admin.set_config(hierarchies={"fraud.detection": {
        "workers": [w.did for w in workers], "supervisors": [team.bob.did],
        "executive": team.admin.did, "objection_window_ms": 3_600_000}})
    # The executive (the admin's key here) acts through MCP.
    exec_key = team.admin.save(tmp_path / "exec.key")
    with anyio.fail_after(60):
        async with stdio_session(node, team.alice.save(tmp_path / "alice.key")) as session:
            proposed = await call(
                session, "propose", domain="fraud.detection", kind="refund", summary="Refund order 12",
                confidence=0.7, stakes="medium", method="hierarchy",
            )
            pid = proposed["id"]
        async with stdio_session(node, exec_key) as session:
            early = await call_error(session, "decide_as_executive", proposal_id=pid, decision="approve", note="fine")
            assert early["error"] == "invalid_state"
            with Client(node, key=team.bob) as bob:
                bob.respond(pid, "challenge", 0.7, "the order was delivered")
            decided = await call(session, "decide_as_executive", proposal_id=pid, decision="approve", note="goodwill")
            assert decided["status"] == "open"
        async with stdio_session(node, team.carol.save(tmp_path / "carol.key")) as session:
            await call(session, "respond", proposal_id=pid, stance="challenge", confidence=0.9, reasoning="no refund policy")
        with Client(node, key=team.alice) as alice:
            answer = alice.respond(pid, "challenge", 0.8, "I was wrong to ask")
            assert answer["status"] == "escalated"
        detail = admin.proposal(pid)
        assert detail["reason"] == "objected"
        assert [o["worker"] for o in detail["hierarchy"]["objections"]] == [team.carol.did, team.alice.did]


@pytest.mark.anyio
async def test_over_stdio_mcp_agents_commit_then_reveal(team: Team, tmp_path: Path) -> None:
    """Sealed responses through MCP (PROTOCOL §18): `respond` commits during
    the commit phase and returns the salt; after the commit deadline the same
    answer reveals it, with the salt (a new session) or without it (the
    session that committed remembers)."""
    node = team.server.url
    answer = {"stance": "endorse", "confidence": 0.9, "reasoning": "matches the fraud pattern"}
    with anyio.fail_after(60):
        async with stdio_session(node, team.alice.save(tmp_path / "alice.key")) as session:
            proposed = await call(
                session, "propose", domain="fraud.detection", kind="block_card", summary="Block card 7",
                confidence=0.8, stakes="critical", commit_seconds=2,
            )
            pid = proposed["id"]
        async with stdio_session(node, team.bob.save(tmp_path / "bob.key")) as session:
            committed = await call(session, "respond", proposal_id=pid, **answer)
            salt = committed["salt"]
            assert len(salt) == 32 and [e["type"] for e in committed["effects"]] == ["committed"]
        async with stdio_session(node, team.carol.save(tmp_path / "carol.key")) as carol:
            await call(carol, "respond", proposal_id=pid, stance="challenge", confidence=0.6, reasoning="a known traveller")
            status = await call(carol, "check_status", proposal_id=pid)
            assert status["status"] == "open" and status["responses"] == 0
            assert status["sealed"]["phase"] == "commit" and status["sealed"]["committed"] == [team.bob.did, team.carol.did]
            with Client(node) as client:
                deadline = status["sealed"]["commit_deadline"]
                while client.now() < deadline + 300:
                    await anyio.sleep(0.1)
            await call(carol, "respond", proposal_id=pid, stance="challenge", confidence=0.6, reasoning="a known traveller")
        async with stdio_session(node, team.bob.save(tmp_path / "bob.key", force=True)) as session:
            changed = await call_error(session, "respond", proposal_id=pid, salt=salt, **{**answer, "confidence": 0.95})
            assert changed["error"] == "bad_reveal"
            done = await call(session, "respond", proposal_id=pid, salt=salt, **answer)
            assert done["status"] == "escalated"
            status = await call(session, "check_status", proposal_id=pid)
            assert status["responses"] == 2 and status["sealed"]["unrevealed"] == []


@pytest.mark.anyio
async def test_over_stdio_mcp_agents_answer_an_open_question(team: Team, tmp_path: Path) -> None:
    """Open questions through MCP (PROTOCOL §19): propose with `open`,
    answer in free text, read the clusters, report the right answer."""
    node = team.server.url
    with anyio.fail_after(60):
        async with stdio_session(node, team.alice.save(tmp_path / "alice.key")) as session:
            asked = await call(
                session, "propose", domain="fraud.review", kind="estimate", summary="How many disputes today?",
                stakes="low", open=True, tolerance="2",
            )
            pid = asked["id"]
        async with stdio_session(node, team.bob.save(tmp_path / "bob.key")) as session:
            await call(session, "respond", proposal_id=pid, answer="40", confidence=0.7, reasoning="the queue")
        async with stdio_session(node, team.carol.save(tmp_path / "carol.key")) as session:
            await call(session, "respond", proposal_id=pid, answer="41.5", confidence=0.6, reasoning="yesterday")
            status = await call(session, "check_status", proposal_id=pid)
            assert status["status"] == "approved" and status["choice"] == "40"
            assert status["clusters"]["clusters"][0]["answers"] == ["40", "41.5"]
        async with stdio_session(node, team.oscar.save(tmp_path / "oscar.key")) as session:
            done = await call(session, "report_outcome", proposal_id=pid, answer="43")
            assert sum(e["type"] == "trust_updated" for e in done["effects"]) == 2
