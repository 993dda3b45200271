"""Framework-free tools for LLM agents: plain callables that take simple
arguments and return short JSON text (or ``error: kind: message``), with
descriptions written for a model. :mod:`synod.integrations.langchain` and
:mod:`synod.integrations.crewai` wrap exactly these."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..client import Client
from ..errors import SynodError

__all__ = ["SynodTools", "ToolSpec", "ToolArg", "TOOL_SPECS", "CONFIDENCE_GUIDE"]

#: What confidence means, in words for a model (docs/PROTOCOL.md §1, §8).
CONFIDENCE_GUIDE = (
    "Confidence is your probability, from 0 to 1, that your stance is right: for an endorsement, that the action "
    "will succeed; for a challenge, that it will fail. 0.5 is a coin flip. State your honest belief: when the "
    "outcome is known, your trust in this domain (and so your future weight) moves toward how well that "
    "probability predicted it, so overstating or hedging costs trust. A confidence below 0.5 says your stance is "
    "more likely wrong than right."
)

_ABSTAIN_GUIDE = (
    "Abstain (confidence is then ignored) when the proposal is outside your expertise or you lack the information "
    "to judge it: an abstention ends the wait for you but carries no weight and is never scored."
)

_AUDIT = "Your reasoning is signed, kept in the space's audit log and shown to human reviewers if the proposal escalates."


@dataclass(frozen=True)
class ToolArg:
    name: str
    type: Any
    description: str
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class ToolSpec:
    """A tool: its name, its description for the model, its arguments."""

    name: str
    description: str
    args: tuple[ToolArg, ...]


TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "synod_list_open_proposals",
        "List the proposals still open for a vote in the synod space, oldest first: id, domain, action kind, "
        "one-line summary, stakes, proposer and deadline (ms since the epoch). Use it to find proposals to review "
        "before reading one with synod_get_proposal.",
        (
            ToolArg("domain", str, "A domain pattern: 'fraud.detection', 'fraud.*' or '*' for all.", False, "*"),
            ToolArg("limit", int, "Most proposals to return (1-100).", False, 20),
        ),
    ),
    ToolSpec(
        "synod_get_proposal",
        "Read one proposal in full: the action (kind, summary, payload), the proposer's confidence, stakes, status, "
        "deadline, every response so far with its stance, confidence and reasoning, and the current tally. Read it "
        "before responding.",
        (ToolArg("proposal_id", str, "The proposal id: 64 lowercase hex characters."),),
    ),
    ToolSpec(
        "synod_propose",
        "Propose an action for the other agents to endorse or challenge. Stakes select how much agreement is "
        "needed: low, medium, high, or critical (critical always goes to a human reviewer). The vote closes at the "
        "deadline, when everyone has answered, or as soon as the result cannot change. "
        "Your confidence is your probability that the action succeeds, in (0, 1]; it counts as your endorsement and "
        "is scored against the outcome like any response. Returns the proposal id.",
        (
            ToolArg("domain", str, "The domain, e.g. 'fraud.detection' (lowercase segments separated by dots)."),
            ToolArg("kind", str, "A machine-readable action kind, e.g. 'block_card' (a-z, 0-9, _ . -)."),
            ToolArg("summary", str, "One line for a person, at most 200 characters."),
            ToolArg("confidence", float, "Your probability that the action succeeds, in (0, 1]."),
            ToolArg("stakes", str, "low, medium, high or critical.", False, "medium"),
            ToolArg("payload_json", Optional[str], "Optional JSON text with the action's details.", False, None),
            ToolArg("deadline_minutes", float, "How long the vote stays open, in minutes.", False, 10.0),
        ),
    ),
    ToolSpec(
        "synod_respond",
        "Respond to an open proposal: 'endorse' (it should be done), 'challenge' (it should not), or 'abstain'. "
        + CONFIDENCE_GUIDE
        + " "
        + _ABSTAIN_GUIDE
        + " "
        + _AUDIT
        + " You can respond to a proposal only once, and not to your own.",
        (
            ToolArg("proposal_id", str, "The proposal id: 64 lowercase hex characters."),
            ToolArg("stance", str, "endorse, challenge or abstain."),
            ToolArg("confidence", float, "Your probability, from 0 to 1, that your stance is right."),
            ToolArg("reasoning", str, "Why, briefly and concretely; kept in the audit log.", False, ""),
        ),
    ),
    ToolSpec(
        "synod_proposal_status",
        "Check where a proposal stands: open (with its tentative leaning, not final), approved, rejected, escalated "
        "to human reviewers (with the reason), approved_by_human, rejected_by_human or superseded; the tally, how "
        "many members have not answered, and the outcome if one was reported.",
        (ToolArg("proposal_id", str, "The proposal id: 64 lowercase hex characters."),),
    ),
    ToolSpec(
        "synod_report_outcome",
        "Report how a decided action turned out, so that the trust of the proposer and of everyone who endorsed or "
        "challenged moves toward how well their confidence predicted it. Only an oracle or reviewer that neither "
        "proposed nor responded may report, once per proposal. Give result 'success' or 'failure', or a graded "
        "score from 0 (complete failure) to 1 (complete success).",
        (
            ToolArg("proposal_id", str, "The proposal id: 64 lowercase hex characters."),
            ToolArg("result", Optional[str], "success or failure (or give score instead).", False, None),
            ToolArg("score", Optional[float], "A graded outcome from 0 to 1 (or give result instead).", False, None),
        ),
    ),
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _error(error: Exception) -> str:
    if isinstance(error, SynodError):
        return f"error: {error.kind}: {error.message}"
    return f"error: {type(error).__name__}: {error}"


class SynodTools:
    """The tools bound to one client (and its key). Each method returns text
    for a model; a refusal is returned as ``error: kind: message`` rather
    than raised, so the model can read it and correct itself."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def bound(self) -> list[tuple[ToolSpec, Callable[..., str]]]:
        """Each spec with the method that implements it."""
        return [(spec, getattr(self, spec.name.removeprefix("synod_"))) for spec in TOOL_SPECS]

    def call(self, name: str, **arguments: Any) -> str:
        for spec, function in self.bound():
            if spec.name == name:
                return function(**arguments)
        return f"error: unknown_tool: {name}"

    def list_open_proposals(self, domain: str = "*", limit: int = 20) -> str:
        try:
            page = self.client.proposals(status="open", domain=domain or "*", limit=max(1, min(limit, 100)))
        except Exception as e:
            return _error(e)
        return _json(
            [
                {
                    "id": p["id"],
                    "domain": p["domain"],
                    "kind": p["kind"],
                    "summary": p["summary"],
                    "stakes": p["stakes"],
                    "proposer": p["proposer"],
                    "deadline": p["deadline"],
                }
                for p in page["proposals"]
            ]
        )

    def get_proposal(self, proposal_id: str) -> str:
        try:
            p = self.client.proposal(proposal_id.strip())
        except Exception as e:
            return _error(e)
        return _json(
            {
                "id": p["id"],
                "status": p["status"],
                "domain": p["domain"],
                "stakes": p["stakes"],
                "proposer": p["proposer"],
                "proposer_confidence": p["confidence"],
                "action": p["action"],
                "deadline": p["deadline"],
                "responses": [
                    {"agent": r["name"] or r["agent"], "stance": r["stance"], "confidence": r["confidence"], "reasoning": r["reasoning"]}
                    for r in p["responses"]
                ],
                "tally": p["tally"],
                "reason": p["reason"],
            }
        )

    def propose(
        self,
        domain: str,
        kind: str,
        summary: str,
        confidence: float,
        stakes: str = "medium",
        payload_json: Optional[str] = None,
        deadline_minutes: float = 10.0,
    ) -> str:
        try:
            payload: Any = json.loads(payload_json) if payload_json else None
        except ValueError as e:
            return f"error: malformed: payload_json is not JSON: {e}"
        try:
            receipt = self.client.propose(
                domain,
                kind,
                summary,
                confidence,
                stakes=stakes,
                payload=payload,
                deadline_ms=max(1, int(deadline_minutes * 60_000)),
            )
        except Exception as e:
            return _error(e)
        return _json({"proposal_id": receipt["id"], "status": receipt["status"]})

    def respond(self, proposal_id: str, stance: str, confidence: float, reasoning: str = "") -> str:
        try:
            receipt = self.client.respond(proposal_id.strip(), stance.strip().lower(), confidence, reasoning)
        except Exception as e:
            return _error(e)
        return _json({"recorded": True, "status": receipt["status"], "tally": receipt["tally"]})

    def proposal_status(self, proposal_id: str) -> str:
        try:
            p = self.client.proposal(proposal_id.strip())
        except Exception as e:
            return _error(e)
        out: dict[str, Any] = {
            "id": p["id"],
            "status": p["status"],
            "reason": p["reason"],
            "tally": p["tally"],
            "responses": len(p["responses"]),
            "not_answered": p["electorate"]["pending"],
            "closed_by": p["closure"]["cause"] if p["closure"] else None,
            "outcome_score": p["outcome"]["score"] if p["outcome"] else None,
        }
        if "leaning" in p:
            out["leaning_tentative"] = p["leaning"]["verdict"]
        return _json(out)

    def report_outcome(self, proposal_id: str, result: Optional[str] = None, score: Optional[float] = None) -> str:
        if (result is None) == (score is None):
            return "error: malformed: give exactly one of result and score"
        try:
            receipt = self.client.report_outcome(proposal_id.strip(), result=result, score=score)
        except Exception as e:
            return _error(e)
        updates = [
            {"agent": e["agent"], "domain": e["domain"], "before": e["before"], "after": e["after"]}
            for e in receipt["effects"]
            if e.get("type") == "trust_updated"
        ]
        return _json({"recorded": True, "trust_updates": updates})
