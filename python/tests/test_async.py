"""AsyncClient does what Client does, over the same real node."""

from __future__ import annotations

import inspect

import anyio
import pytest

from synod import AsyncClient, AsyncEventStream, Client, Event, SignedMessage, SynodError, verify_chain

from .conftest import Team
from .helpers import Proxy, expected_events


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_every_client_call_has_an_async_twin() -> None:
    sync_api = {n for n, _ in inspect.getmembers(Client, inspect.isfunction) if not n.startswith("_")}
    async_api = {n for n, _ in inspect.getmembers(AsyncClient, inspect.isfunction) if not n.startswith("_")}
    assert sync_api - {"close"} == async_api - {"aclose"}
    for name in sync_api - {"close", "events"}:
        method = getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), name
        assert inspect.signature(method).parameters.keys() == inspect.signature(getattr(Client, name)).parameters.keys()


@pytest.mark.anyio
async def test_the_whole_lifecycle_async(team: Team) -> None:
    async with AsyncClient(team.server.url, key=team.alice) as node:
        info = await node.space()
        assert info["space"].startswith("space-")
        assert (await node.health())["status"] == "ok"
        assert "synod" in await node.metrics()
        assert "/v1/log" in (await node.openapi())["paths"]
        assert (await node.agents())["total"] == 6
        assert (await node.agent())["name"] == "alice"

        # Approved at once.
        pid = (await node.propose("fraud.detection", "block_card", "async one", 0.9))["id"]
        answer = await node.respond(pid, "endorse", 1, "async bob", key=team.bob)
        assert answer["status"] == "approved"
        detail = await node.proposal(pid)
        assert SignedMessage.from_dict(detail["message"]).verify()
        assert detail["responses"][0]["reasoning"] == "async bob"

        # Contested, escalated, decided by the reviewer token, scored.
        contested = (await node.propose("fraud.detection", "freeze", "async two", "0.6"))["id"]
        await node.respond(contested, "challenge", "0.9", key=team.bob)
        assert (await node.respond(contested, "endorse", "0.5", key=team.carol))["status"] == "escalated"
        assert (await node.escalations())["total"] == 1
        decided = await node.decide(contested, "reject", "no", reviewer_token=team.reviewer_token)
        assert decided["status"] == "rejected_by_human"
        receipt = await node.report_outcome(contested, result="success", key=team.oscar)
        assert [e["type"] for e in receipt["effects"]].count("trust_updated") == 3
        assert float((await node.agent(team.bob.did))["trust"]["fraud.detection"]) < 0.5

        open_ids = [p["id"] async for p in node.open_proposals("fraud.*")]
        assert open_ids == []
        listed = await node.proposals(status="rejected_by_human")
        assert [p["id"] for p in listed["proposals"]] == [contested]
        lines = await node.log()
        assert verify_chain(lines) == (await node.space())["head"]["last_hash"]

        with pytest.raises(SynodError) as dup:
            await node.respond(pid, "endorse", 1, key=team.bob)
        assert (dup.value.kind, dup.value.status) == ("duplicate", 409)
        with pytest.raises(SynodError) as missing:
            await node.proposal("00" * 32)
        assert missing.value.kind == "not_found"
        with pytest.raises(SynodError) as unauthorized:
            await node.decide(pid, "approve", reviewer_token="synod_rt_x")
        assert unauthorized.value.kind == "unauthorized"
        receipt_cfg = await node.set_config(mode="open", key=team.admin)
        assert receipt_cfg["effects"][0]["type"] == "config_changed"
        token, did = await node.add_reviewer("async-reviewer", key=team.admin)
        assert "reviewer" in (await node.agent(did))["roles"]


async def _collect(stream: AsyncEventStream, out: list[Event], ready: anyio.Event) -> None:
    async for event in stream:
        out.append(event)
        ready.set()


async def _wait_count(out: list[Event], n: int, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while len(out) < n:
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_async_events_resume_after_a_cut(team: Team) -> None:
    direct = AsyncClient(team.server.url)
    proxy = Proxy(team.server.port)
    try:
        for label in ("a", "b"):
            pid = (await direct.propose("fraud.detection", "block_card", label, 0.9, key=team.alice))["id"]
            await direct.respond(pid, "challenge", "0.6", key=team.carol)
            await direct.respond(pid, "endorse", "1", key=team.bob)
        async with AsyncClient(proxy.url) as via_proxy:
            stream = via_proxy.events(from_index=0)
            got: list[Event] = []
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_collect, stream, got, anyio.Event())
                await _wait_count(got, 4)
                assert proxy.cut() >= 1
                pid = (await direct.propose("fraud.detection", "block_card", "c", 0.9, key=team.alice))["id"]
                await direct.respond(pid, "endorse", "1", key=team.bob)
                expected = expected_events(await direct.log())
                await _wait_count(got, len(expected))
                await anyio.sleep(0.3)
                assert [(e.id, e.type) for e in got] == expected
                assert stream.reconnects >= 1 and proxy.accepted >= 2
                tasks.cancel_scope.cancel()
            await stream.aclose()
    finally:
        proxy.close()
        await direct.aclose()


@pytest.mark.anyio
async def test_sealed_answers_and_open_questions_async(team: Team) -> None:
    """PROTOCOL §18 and §19 through AsyncClient: commit, reveal after the
    commit deadline, and an open question's clusters."""
    async with AsyncClient(team.server.url) as node:
        pid = (
            await node.propose(
                "fraud.detection", "block_card", "Block card 55", 0.9, stakes="critical", commit_ms=1_000, key=team.alice
            )
        )["id"]
        sealed = await node.commit(pid, "challenge", "0.7", "a known traveller", key=team.carol)
        assert [e["type"] for e in sealed.receipt["effects"]] == ["committed"]
        with pytest.raises(SynodError) as early:
            await node.reveal(sealed, key=team.carol)
        assert early.value.kind == "wrong_phase"
        deadline = (await node.proposal(pid))["sealed"]["commit_deadline"]
        while await node.now() < deadline + 300:
            await anyio.sleep(0.1)
        revealed = await node.reveal(sealed, key=team.carol)
        assert [e["stance"] for e in revealed["effects"] if e["type"] == "response_counted"] == ["challenge"]

        qid = (await node.ask_open("fraud.review", "estimate", "How many cards?", tolerance="1", stakes="low", key=team.alice))["id"]
        await node.answer(qid, "3", "0.8", key=team.bob)
        done = await node.answer(qid, "4", "0.6", key=team.carol)
        assert done["status"] == "approved"
        detail = await node.proposal(qid)
        assert detail["choice"] == "3" and detail["clusters"]["clusters"][0]["answers"] == ["3", "4"]
