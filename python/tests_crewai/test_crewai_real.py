"""synod's CrewAI tools against the real crewai package. crewai is large
(about 1 GB with its dependencies), so this is not part of tests/ and of
scripts/test; run it where crewai is installed:

    pip install './python[crewai,test]'
    SYNOD_BIN=target/debug/synod python3 -m pytest python/tests_crewai
"""

from __future__ import annotations

from typing import Any

from crewai.tools import BaseTool

from synod import Client
from synod.integrations.crewai import synod_tools
from synod.integrations.tools import TOOL_SPECS
from tests.conftest import Team
from tests.test_integrations import _round_trip


def test_real_crewai_tools_drive_a_proposal(team: Team) -> None:
    tools = synod_tools(team.client(team.bob))
    assert all(isinstance(t, BaseTool) for t in tools)
    assert [t.name for t in tools] == [spec.name for spec in TOOL_SPECS]

    def call(client: Client, name: str, arguments: dict[str, Any]) -> str:
        tool = next(t for t in synod_tools(client) if t.name == name)
        return str(tool.run(**arguments))

    _round_trip(team, call)


def test_the_crewai_snippet_of_integrations_md_runs(team: Team) -> None:
    from tests.conftest import REPO
    from tests.test_docs import python_blocks

    block = next(b for b in python_blocks(REPO / "docs" / "INTEGRATIONS.md") if "crewai" in b)
    namespace: dict[str, Any] = {"node": team.client(team.bob)}
    exec(block, namespace)
    reviewer = namespace["reviewer"]
    assert [t.name for t in reviewer.tools] == [spec.name for spec in TOOL_SPECS]
    assert reviewer.tools[0].run(domain="fraud.*") == "[]"  # no proposal is open
