"""The LLM tools: the plain callables against the node, LangChain for real,
CrewAI's adapter against a stand-in of its BaseTool (the real crewai is
heavy; tests_crewai/ runs the same against it)."""

from __future__ import annotations

import json
import sys
import types
from typing import Any, Iterator

import pydantic
import pytest

from synod import Client
from synod.integrations import crewai as crewai_adapter
from synod.integrations.tools import TOOL_SPECS, SynodTools

from .conftest import Team


def test_the_core_package_does_not_import_the_frameworks() -> None:
    import subprocess

    code = (
        "import sys, synod, synod.integrations.tools, synod.integrations.langchain, synod.integrations.crewai;"
        "print(sorted(m for m in ('langchain_core', 'crewai', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_descriptions_tell_the_model_what_confidence_means() -> None:
    by_name = {spec.name: spec for spec in TOOL_SPECS}
    respond = by_name["synod_respond"].description
    assert "probability" in respond and "0.5 is a coin flip" in respond
    assert "Abstain" in respond and "never scored" in respond
    assert "audit log" in respond
    assert "probability that the action succeeds" in by_name["synod_propose"].description
    assert set(by_name) == {
        "synod_list_open_proposals",
        "synod_get_proposal",
        "synod_propose",
        "synod_respond",
        "synod_proposal_status",
        "synod_report_outcome",
    }


def _round_trip(team: Team, call: Any) -> None:
    """Drives one proposal through the tools of alice, bob, carol and oscar.
    ``call(client, name, arguments)`` runs a tool and returns its text."""
    alice, bob, carol, oscar = (team.client(k) for k in (team.alice, team.bob, team.carol, team.oscar))
    created = json.loads(
        call(alice, "synod_propose", {
            "domain": "fraud.detection", "kind": "block_card", "summary": "Block card 7",
            "confidence": 0.8, "stakes": "critical", "payload_json": '{"card": 7}', "deadline_minutes": 5,
        })
    )
    pid = created["proposal_id"]
    assert created["status"] == "open"
    listed = json.loads(call(bob, "synod_list_open_proposals", {"domain": "fraud.*"}))
    assert [p["id"] for p in listed] == [pid] and listed[0]["summary"] == "Block card 7"
    read = json.loads(call(bob, "synod_get_proposal", {"proposal_id": pid}))
    assert read["action"]["payload"] == {"card": 7} and read["proposer_confidence"] == "0.8"
    answer = json.loads(call(bob, "synod_respond", {
        "proposal_id": pid, "stance": "endorse", "confidence": 0.9, "reasoning": "two countries in an hour",
    }))
    assert answer["recorded"] is True and answer["status"] == "open"
    again = call(bob, "synod_respond", {"proposal_id": pid, "stance": "endorse", "confidence": 0.9, "reasoning": ""})
    assert again.startswith("error: duplicate: ")
    status = json.loads(call(carol, "synod_proposal_status", {"proposal_id": pid}))
    assert status["status"] == "open" and status["not_answered"] == 1 and "leaning_tentative" in status
    call(carol, "synod_respond", {"proposal_id": pid, "stance": "abstain", "confidence": 0, "reasoning": "not mine"})
    status = json.loads(call(carol, "synod_proposal_status", {"proposal_id": pid}))
    assert status["status"] == "escalated" and status["reason"] == "stakes"
    alice.decide(pid, "approve", reviewer_token=team.reviewer_token)
    outcome = json.loads(call(oscar, "synod_report_outcome", {"proposal_id": pid, "result": "success"}))
    assert [u["agent"] for u in outcome["trust_updates"]] == [team.alice.did, team.bob.did]
    assert all(float(u["after"]) > float(u["before"]) for u in outcome["trust_updates"])
    read = json.loads(call(alice, "synod_get_proposal", {"proposal_id": pid}))
    assert [(r["agent"], r["stance"], r["reasoning"]) for r in read["responses"]] == [
        ("bob", "endorse", "two countries in an hour"),
        ("carol", "abstain", "not mine"),
    ]
    assert call(alice, "synod_get_proposal", {"proposal_id": "nope"}).startswith("error: malformed: ")


def test_the_plain_tools_drive_a_proposal(team: Team) -> None:
    _round_trip(team, lambda client, name, args: SynodTools(client).call(name, **args))
    with team.client(team.alice) as alice:
        tools = SynodTools(alice)
        assert tools.report_outcome("ab" * 32).startswith("error: malformed: ")
        assert tools.propose("fraud.x", "k", "s", 0.5, payload_json="{nope").startswith("error: malformed: ")
        assert tools.call("synod_unknown") == "error: unknown_tool: synod_unknown"


def test_langchain_tools_drive_a_proposal(team: Team) -> None:
    from langchain_core.tools import BaseTool

    from synod.integrations.langchain import synod_tools

    tools = synod_tools(team.client(team.bob))
    assert all(isinstance(t, BaseTool) for t in tools)
    respond = next(t for t in tools if t.name == "synod_respond")
    schema = respond.args_schema.model_json_schema()  # type: ignore[union-attr]
    assert set(schema["required"]) == {"proposal_id", "stance", "confidence"}
    assert "probability" in schema["properties"]["confidence"]["description"]
    assert [t.name for t in synod_tools(team.client(team.bob), names=["synod_respond"])] == ["synod_respond"]

    def call(client: Client, name: str, arguments: dict[str, Any]) -> str:
        tool = next(t for t in synod_tools(client) if t.name == name)
        return str(tool.invoke(arguments))

    _round_trip(team, call)


class _StandInBaseTool(pydantic.BaseModel):
    """What synod uses of crewai.tools.BaseTool: name, description,
    args_schema, and run() validating the arguments and calling _run()."""

    name: str
    description: str
    args_schema: type[pydantic.BaseModel]

    def run(self, **kwargs: Any) -> Any:
        arguments = self.args_schema(**kwargs).model_dump()
        return self._run(**arguments)

    def _run(self, **kwargs: Any) -> Any:
        raise NotImplementedError


@pytest.fixture
def stand_in_crewai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    package = types.ModuleType("crewai")
    tools = types.ModuleType("crewai.tools")
    tools.BaseTool = _StandInBaseTool  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "crewai", package)
    monkeypatch.setitem(sys.modules, "crewai.tools", tools)
    monkeypatch.setattr(crewai_adapter, "_TOOL_CLASS", None)
    yield
    crewai_adapter._TOOL_CLASS = None


def test_crewai_adapter_drives_a_proposal(team: Team, stand_in_crewai: None) -> None:
    tools = crewai_adapter.synod_tools(team.client(team.bob))
    assert [t.name for t in tools] == [spec.name for spec in TOOL_SPECS]
    assert all(isinstance(t, _StandInBaseTool) for t in tools)

    def call(client: Client, name: str, arguments: dict[str, Any]) -> str:
        tool = next(t for t in crewai_adapter.synod_tools(client) if t.name == name)
        return str(tool.run(**arguments))

    _round_trip(team, call)
