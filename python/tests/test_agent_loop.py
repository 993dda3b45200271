"""The agent loop answers proposals end to end, skips what it answered or
may not answer, and keeps going through cut connections."""

from __future__ import annotations

import threading
from typing import Callable

import anyio
import pytest

from synod import AgentLoop, AsyncAgentLoop, AsyncClient, Client, Decision
from synod.types import ProposalDetail

from .conftest import Team
from .helpers import Proxy, wait_for


class Recorder:
    """A decide callback that remembers what it was asked."""

    def __init__(self, answer: Callable[[ProposalDetail], Decision | None]) -> None:
        self.asked: list[str] = []
        self.answer = answer
        self.lock = threading.Lock()

    def __call__(self, proposal: ProposalDetail) -> Decision | None:
        with self.lock:
            self.asked.append(proposal["id"])
        return self.answer(proposal)


def bob_decides(proposal: ProposalDetail) -> Decision | None:
    if proposal["kind"] == "skip_me":
        return None
    if proposal["action"]["payload"] and proposal["action"]["payload"].get("risky"):
        return Decision.challenge(0.8, "bob: too risky")
    return Decision.endorse(0.9, f"bob: {proposal['summary']} looks right")


def responses_of(node: Client, pid: str) -> dict[str, tuple[str, str, str]]:
    return {r["name"]: (r["stance"], r["confidence"], r["reasoning"]) for r in node.proposal(pid)["responses"]}


def test_loops_answer_proposals_end_to_end_through_cut_connections(team: Team) -> None:
    node = team.client()
    propose = lambda summary, kind="block_card", payload=None, domain="fraud.detection": node.propose(  # noqa: E731
        domain, kind, summary, 0.7, stakes="critical", payload=payload, key=team.alice
    )["id"]
    # Before the loops start: one bob already answered, one nobody answered.
    answered = propose("answered by hand")
    node.respond(answered, "endorse", "0.6", "by hand", key=team.bob)
    waiting = propose("waiting")

    proxy = Proxy(team.server.port)
    bob = Recorder(bob_decides)
    carol = Recorder(lambda p: Decision.abstain("carol: not my call"))
    loops = [
        AgentLoop(Client(proxy.url, key=team.bob), bob),
        AgentLoop(Client(proxy.url, key=team.carol), carol, domains=["fraud.*"]),
    ]
    threads = [threading.Thread(target=loop.run, daemon=True) for loop in loops]
    for t in threads:
        t.start()
    try:
        # Catch-up answers the waiting one and skips the answered one.
        wait_for(lambda: len(responses_of(node, waiting)) == 2, what="catch-up")
        assert responses_of(node, waiting) == {
            "bob": ("endorse", "0.9", "bob: waiting looks right"),
            "carol": ("abstain", "0", "carol: not my call"),
        }
        assert loops[0].handled[answered] == "already" and answered not in bob.asked
        assert responses_of(node, answered) == {"bob": ("endorse", "0.6", "by hand"), "carol": ("abstain", "0", "carol: not my call")}

        # Live proposals, with the connections cut between them.
        wait_for(lambda: all(loop.stream is not None and loop.stream.connections for loop in loops), what="streams")
        live = propose("live one")
        wait_for(lambda: len(responses_of(node, live)) == 2, what="live answers")
        assert proxy.cut() >= 2
        risky = propose("after the cut", payload={"risky": True})
        wait_for(lambda: len(responses_of(node, risky)) == 2, what="answers after a cut")
        assert responses_of(node, risky)["bob"] == ("challenge", "0.8", "bob: too risky")
        proxy.cut()
        skipped = propose("bob passes", kind="skip_me")
        elsewhere = propose("not bob's domain", domain="credit.loans")
        wait_for(lambda: len(responses_of(node, skipped)) == 1, what="carol on the skipped one")
        # The loop records what it did after the decider returns: wait for
        # the record, not only the question.
        wait_for(lambda: skipped in loops[0].handled, what="bob passed")
        wait_for(lambda: elsewhere in loops[0].handled, what="bob saw the other domain")

        assert loops[0].handled[skipped] == "passed" and "bob" not in responses_of(node, skipped)
        assert loops[0].handled[elsewhere] == "not_member" and elsewhere not in bob.asked
        assert loops[1].handled[elsewhere] == "out_of_domain"
        # Each proposal asked about once, though the streams reconnected.
        assert sorted(bob.asked) == sorted([waiting, live, risky, skipped])
        assert sorted(carol.asked) == sorted([answered, waiting, live, risky, skipped])
        assert loops[0].responses == 3 and loops[1].responses == 5
        assert all(loop.stream is not None and loop.stream.reconnects >= 2 for loop in loops)
        # Both answered everything they could: the critical proposals escalated.
        assert node.proposal(live)["status"] == "escalated"
    finally:
        for loop in loops:
            loop.stop()
        for t in threads:
            t.join(5)
        proxy.close()
    assert not any(t.is_alive() for t in threads), "stop() ends run() from another thread"


def test_a_loop_stops_after_max_responses_and_skips_its_own_and_closed_ones(team: Team) -> None:
    node = team.client()
    mine = node.propose("fraud.detection", "block_card", "bob's own", 0.7, stakes="critical", key=team.bob)["id"]
    closed = node.propose("fraud.detection", "block_card", "closes", 0.9, key=team.alice)["id"]
    node.respond(closed, "endorse", 1, key=team.bob)
    target = node.propose("fraud.detection", "block_card", "target", 0.7, stakes="critical", key=team.alice)["id"]
    carol_decide = Recorder(lambda p: Decision.endorse("0.75", "carol agrees"))
    loop = AgentLoop(team.client(team.carol), carol_decide)
    loop.run(max_responses=2)
    assert loop.handled[mine] == "responded" and loop.handled[target] == "responded"
    assert closed not in carol_decide.asked
    bob_loop = AgentLoop(team.client(team.bob), Recorder(bob_decides), catch_up=True)
    assert bob_loop.catch_up() == 1
    assert bob_loop.handled[mine] == "own" and bob_loop.handled[target] == "responded"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_async_loop_answers_with_an_async_callback(team: Team) -> None:
    node = AsyncClient(team.server.url)
    asked: list[str] = []

    async def decide(proposal: ProposalDetail) -> Decision | None:
        await anyio.sleep(0.01)
        asked.append(proposal["id"])
        return Decision.challenge(0.65, "async carol")

    loop = AsyncAgentLoop(AsyncClient(team.server.url, key=team.carol), decide)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(loop.run)
            with anyio.fail_after(20):
                while loop.stream is None or not loop.stream.connections:
                    await anyio.sleep(0.02)
            pid = (await node.propose("fraud.detection", "block_card", "async", 0.7, stakes="critical", key=team.alice))["id"]
            with anyio.fail_after(20):
                while not (await node.proposal(pid))["responses"]:
                    await anyio.sleep(0.05)
            await loop.stop()
        detail = await node.proposal(pid)
        assert [(r["name"], r["stance"], r["confidence"], r["reasoning"]) for r in detail["responses"]] == [
            ("carol", "challenge", "0.65", "async carol")
        ]
        assert asked == [pid] and loop.handled[pid] == "responded" and loop.responses == 1
    finally:
        await node.aclose()
