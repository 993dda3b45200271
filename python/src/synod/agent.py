"""An agent loop: watch proposals, ask a callback, respond.

:class:`AgentLoop` (blocking) and :class:`AsyncAgentLoop` answer every
proposal that opens in the agent's domains: they list the open proposals
once, then follow ``proposal_opened`` events from the log position read
before listing (so none falls between the two), reconnecting after a dropped
connection without missing or repeating an event. For each proposal they
skip what they need not answer (their own, one already answered, one closed,
a domain where the agent has no authority), call ``decide(proposal)``, and
send the :class:`Decision` it returns; ``None`` passes. A response that may
have been lost in transit is sent again as the same signed message, so the
node counts it once (a repeat is a ``duplicate``, taken as answered).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Optional, Sequence, Union

import anyio
import httpx

from .aio import AsyncClient
from .client import Client
from .domains import authority_in, pattern_matches
from .errors import SynodError
from .events import AsyncEventStream, Event, EventStream
from .keys import Keypair
from .messages import response_body
from .types import AgentDetail, ProposalDetail, SpaceConfig
from .wire import DecimalLike, SignedMessage

__all__ = ["Decision", "AgentLoop", "AsyncAgentLoop", "Decide", "AsyncDecide"]

log = logging.getLogger("synod.agent")


@dataclass(frozen=True)
class Decision:
    """What to answer: a stance, the probability that the stance is right
    (0.5 is a coin flip; abstain to say nothing), and reasoning for the
    audit log."""

    stance: str
    confidence: DecimalLike
    reasoning: str = ""

    @classmethod
    def endorse(cls, confidence: DecimalLike, reasoning: str = "") -> Decision:
        return cls("endorse", confidence, reasoning)

    @classmethod
    def challenge(cls, confidence: DecimalLike, reasoning: str = "") -> Decision:
        return cls("challenge", confidence, reasoning)

    @classmethod
    def abstain(cls, reasoning: str = "", confidence: DecimalLike = "0") -> Decision:
        return cls("abstain", confidence, reasoning)


Decide = Callable[[ProposalDetail], Optional[Decision]]
AsyncDecide = Callable[[ProposalDetail], Union[Optional[Decision], Awaitable[Optional[Decision]]]]

#: Refusals after which the proposal is done with (it is not retried).
_FINAL_REFUSALS = {"proposal_closed", "not_eligible", "unknown_proposal"}


class _LoopState:
    """What both loops remember."""

    def __init__(self, me: str, domains: Sequence[str] | None, respond_attempts: int) -> None:
        self.me = me
        self.domains = list(domains) if domains is not None else None
        self.respond_attempts = respond_attempts
        #: Proposal id → what became of it: ``responded``, ``passed``
        #: (decide returned None), ``already`` (answered before), ``own``,
        #: ``closed``, ``not_member``, ``out_of_domain``, or a refusal kind.
        self.handled: dict[str, str] = {}
        #: Responses this loop sent and the node accepted.
        self.responses = 0
        #: How many times ``decide`` was called.
        self.decisions = 0
        self._agent: AgentDetail | None = None
        self._config: SpaceConfig | None = None
        self.stopping = False

    def patterns(self) -> list[str]:
        return self.domains if self.domains is not None else ["*"]

    def in_domains(self, domain: str) -> bool:
        return self.domains is None or any(pattern_matches(p, domain) for p in self.domains)

    def note(self, event: Event) -> None:
        """Forgets cached facts an event changes."""
        if event.type in ("granted", "agent_registered") and event.data.get("agent") == self.me:
            self._agent = None
        elif event.type == "config_changed":
            self._config = None

    def member(self, domain: str) -> bool:
        assert self._agent is not None and self._config is not None
        return "agent" in self._agent["roles"] and authority_in(self._agent, domain, self._config) > 0

    def screen(self, detail: ProposalDetail) -> str | None:
        """Why not to ask about this proposal, or None to ask."""
        if detail["proposer"] == self.me:
            return "own"
        if any(r["agent"] == self.me for r in detail["responses"]):
            return "already"
        if detail["status"] != "open":
            return "closed"
        member = detail.get("member")
        if isinstance(member, dict) and member.get("eligible") is False:
            # The electorate was frozen when the proposal entered the log.
            return "not_eligible"
        return None

    def refused(self, proposal_id: str, error: SynodError) -> str:
        if error.kind == "duplicate":
            # An earlier send of this very message was counted.
            self.responses += 1
            return "responded"
        if error.kind not in _FINAL_REFUSALS:
            log.warning("response to %s refused: %s", proposal_id, error)
        return error.kind


class AgentLoop:
    """Answers proposals with ``decide`` until stopped.

    ``domains`` are patterns (``fraud.*``) limiting what is considered;
    without them, every domain where the agent currently has authority. Run
    it with :meth:`run` (blocking; :meth:`stop` from another thread or the
    callback ends it).
    """

    def __init__(
        self,
        client: Client,
        decide: Decide,
        *,
        domains: Sequence[str] | None = None,
        key: Keypair | None = None,
        catch_up: bool = True,
        respond_attempts: int = 3,
        stream_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.key = key or client._signer(None)
        self.decide = decide
        self.catch_up_first = catch_up
        self.state = _LoopState(self.key.did, domains, respond_attempts)
        self.stream_options = dict(stream_options or {})
        self.stream: EventStream | None = None
        self._lock = threading.Lock()

    @property
    def handled(self) -> dict[str, str]:
        return self.state.handled

    @property
    def responses(self) -> int:
        return self.state.responses

    def stop(self) -> None:
        """Ends :meth:`run` (safe from another thread)."""
        with self._lock:
            self.state.stopping = True
            stream = self.stream
        if stream is not None:
            stream.close()

    def run(self, *, max_responses: int | None = None) -> None:
        """Catches up on open proposals, then follows events until
        :meth:`stop` or ``max_responses`` responses have been sent."""
        head = self.client.space()["head"]["next_index"]
        if self.catch_up_first:
            self.catch_up()
        if self._done(max_responses):
            return
        with self._lock:
            if self.state.stopping:
                return
            self.stream = self.client.events(from_index=head, **self.stream_options)
        try:
            for event in self.stream:
                self.state.note(event)
                if event.type == "proposal_opened":
                    self.handle(str(event.data["proposal"]), str(event.data["domain"]))
                if self._done(max_responses):
                    return
        finally:
            self.stream.close()

    def _done(self, max_responses: int | None) -> bool:
        return self.state.stopping or (max_responses is not None and self.state.responses >= max_responses)

    def catch_up(self) -> int:
        """Answers the proposals open now; returns how many were answered."""
        before = self.state.responses
        for pattern in self.state.patterns():
            for summary in self.client.open_proposals(pattern):
                self.handle(summary["id"], summary["domain"])
                if self.state.stopping:
                    break
        return self.state.responses - before

    def _refresh(self) -> None:
        if self.state._agent is None:
            self.state._agent = self.client.agent(self.state.me)
        if self.state._config is None:
            self.state._config = self.client.space()["config"]

    def handle(self, proposal_id: str, domain: str) -> str:
        """Considers one proposal; returns what became of it (see
        ``handled``)."""
        state = self.state
        if proposal_id in state.handled:
            return state.handled[proposal_id]
        outcome = self._consider(proposal_id, domain)
        state.handled[proposal_id] = outcome
        return outcome

    def _consider(self, proposal_id: str, domain: str) -> str:
        state = self.state
        if not state.in_domains(domain):
            return "out_of_domain"
        self._refresh()
        if not state.member(domain):
            return "not_member"
        detail = self.client.proposal(proposal_id, agent=state.me)
        skip = state.screen(detail)
        if skip is not None:
            return skip
        state.decisions += 1
        decision = self.decide(detail)
        if decision is None:
            return "passed"
        body = response_body(
            proposal=proposal_id,
            stance=decision.stance,
            confidence=decision.confidence,
            reasoning=decision.reasoning,
        )
        return self._send(proposal_id, self.client.sign("response", body, key=self.key))

    def _send(self, proposal_id: str, message: SignedMessage) -> str:
        delay = 0.2
        for attempt in range(self.state.respond_attempts):
            try:
                self.client.submit(message)
            except SynodError as e:
                return self.state.refused(proposal_id, e)
            except httpx.TransportError:
                if attempt == self.state.respond_attempts - 1:
                    raise
                time.sleep(delay)
                delay *= 2
                continue
            self.state.responses += 1
            return "responded"
        raise AssertionError("unreachable")


class AsyncAgentLoop:
    """:class:`AgentLoop` for :class:`AsyncClient`. ``decide`` may be a plain
    function or a coroutine function. Stop it with :meth:`stop` or by
    cancelling the task running :meth:`run`."""

    def __init__(
        self,
        client: AsyncClient,
        decide: AsyncDecide,
        *,
        domains: Sequence[str] | None = None,
        key: Keypair | None = None,
        catch_up: bool = True,
        respond_attempts: int = 3,
        stream_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.key = key or client._signer(None)
        self.decide = decide
        self.catch_up_first = catch_up
        self.state = _LoopState(self.key.did, domains, respond_attempts)
        self.stream_options = dict(stream_options or {})
        self.stream: AsyncEventStream | None = None

    @property
    def handled(self) -> dict[str, str]:
        return self.state.handled

    @property
    def responses(self) -> int:
        return self.state.responses

    async def stop(self) -> None:
        self.state.stopping = True
        if self.stream is not None:
            await self.stream.aclose()

    async def run(self, *, max_responses: int | None = None) -> None:
        head = (await self.client.space())["head"]["next_index"]
        if self.catch_up_first:
            await self.catch_up()
        if self._done(max_responses):
            return
        self.stream = self.client.events(from_index=head, **self.stream_options)
        try:
            async for event in self.stream:
                self.state.note(event)
                if event.type == "proposal_opened":
                    await self.handle(str(event.data["proposal"]), str(event.data["domain"]))
                if self._done(max_responses):
                    return
        finally:
            await self.stream.aclose()

    def _done(self, max_responses: int | None) -> bool:
        return self.state.stopping or (max_responses is not None and self.state.responses >= max_responses)

    async def catch_up(self) -> int:
        before = self.state.responses
        for pattern in self.state.patterns():
            async for summary in self.client.open_proposals(pattern):
                await self.handle(summary["id"], summary["domain"])
                if self.state.stopping:
                    break
        return self.state.responses - before

    async def _refresh(self) -> None:
        if self.state._agent is None:
            self.state._agent = await self.client.agent(self.state.me)
        if self.state._config is None:
            self.state._config = (await self.client.space())["config"]

    async def handle(self, proposal_id: str, domain: str) -> str:
        state = self.state
        if proposal_id in state.handled:
            return state.handled[proposal_id]
        outcome = await self._consider(proposal_id, domain)
        state.handled[proposal_id] = outcome
        return outcome

    async def _consider(self, proposal_id: str, domain: str) -> str:
        state = self.state
        if not state.in_domains(domain):
            return "out_of_domain"
        await self._refresh()
        if not state.member(domain):
            return "not_member"
        detail = await self.client.proposal(proposal_id, agent=state.me)
        skip = state.screen(detail)
        if skip is not None:
            return skip
        state.decisions += 1
        answer = self.decide(detail)
        decision = await answer if inspect.isawaitable(answer) else answer
        if decision is None:
            return "passed"
        body = response_body(
            proposal=proposal_id,
            stance=decision.stance,
            confidence=decision.confidence,
            reasoning=decision.reasoning,
        )
        return await self._send(proposal_id, await self.client.sign("response", body, key=self.key))

    async def _send(self, proposal_id: str, message: SignedMessage) -> str:
        delay = 0.2
        for attempt in range(self.state.respond_attempts):
            try:
                await self.client.submit(message)
            except SynodError as e:
                return self.state.refused(proposal_id, e)
            except httpx.TransportError:
                if attempt == self.state.respond_attempts - 1:
                    raise
                await anyio.sleep(delay)
                delay *= 2
                continue
            self.state.responses += 1
            return "responded"
        raise AssertionError("unreachable")
