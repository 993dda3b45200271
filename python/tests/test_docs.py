"""The Python snippets of python/README.md and docs/INTEGRATIONS.md run, in
order, against a real node (a block that runs an agent loop runs in a thread
until the loop has answered a proposal)."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from synod import Keypair

from .conftest import REPO, Team, run_cli
from .helpers import wait_for

FENCE = re.compile(r"```python\n(.*?)```", re.S)


def python_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text(encoding="utf-8"))


@pytest.fixture
def doc_env(team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    """$SYNOD_NODE, a config dir for named keys, and ./synod-data/admin.key."""
    monkeypatch.setenv("SYNOD_NODE", team.server.url)
    monkeypatch.setenv("SYNOD_CONFIG_DIR", str(tmp_path / "config"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "synod-data").symlink_to(team.server.data_dir)
    monkeypatch.chdir(work)
    return team


def run_loop_block(code: str, namespace: dict[str, Any], team: Team, kind: str, payload: Any) -> Any:
    """Runs a block that ends in ``loop.run()`` in a thread; alice proposes
    something for the loop to answer; returns the loop once it answered."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            exec(code, namespace)
        except BaseException as e:  # reported below
            errors.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    loop = wait_for(lambda: namespace.get("loop"), what="the loop to be made")
    wait_for(lambda: errors or (loop.stream is not None and loop.stream.connections), what="the loop to listen")
    assert not errors, errors
    with team.client(team.alice) as alice:
        pid = alice.propose("fraud.detection", kind, "for the loop", 0.7, stakes="critical", payload=payload)["id"]
    wait_for(lambda: errors or loop.handled.get(pid), what="the loop to answer")
    loop.stop()
    thread.join(10)
    assert not errors, errors
    assert not thread.is_alive()
    return loop, pid


def test_the_readme_snippets_run(doc_env: Team, capsys: pytest.CaptureFixture[str]) -> None:
    team = doc_env
    blocks = python_blocks(REPO / "python" / "README.md")
    assert len(blocks) == 10
    namespace: dict[str, Any] = {"cards_of_travellers": {"9999"}}
    for code in blocks:
        if "loop.run()" in code:
            loop, pid = run_loop_block(code, namespace, team, "block_card", {"card": "4411"})
            assert loop.handled[pid] == "responded"
            with team.client() as node:
                responses = node.proposal(pid)["responses"]
            key = namespace["Keypair"].load_named("fraud-bot")
            assert [(r["agent"], r["stance"], r["reasoning"]) for r in responses] == [
                (key.did, "endorse", "two countries within an hour")
            ]
        else:
            exec(code, namespace)
    out = capsys.readouterr().out
    assert namespace["key"].did in out
    assert "not_eligible 403" in out
    # The status and tally: fraud-bot's own endorsement under log-odds
    # weighting (the default): authority 0.8 × logit(0.85), capped at ln 4.
    assert "open {'challenge': '0', 'endorse': '1.1090354888952', 'potential': '" in out
    assert "proposal_opened" in out
    # The question's pool: only the proposer's own distribution so far
    # (the log pool's exponential truncates, so 0.6 may print as 0.599999).
    assert "{'leader': 'manual', 'pooled': {'auto': '0.3" in out
    # The open question has no answers yet; the sealed vote is committing.
    assert "{'agreement': '0', 'clusters': [], 'leader': None}" in out
    assert "\ncommit\n" in out
    assert os.path.exists(os.path.join(os.environ["SYNOD_CONFIG_DIR"], "keys", "fraud-bot.json"))


def test_the_integrations_snippets_run(doc_env: Team, capsys: pytest.CaptureFixture[str]) -> None:
    team = doc_env
    blocks = python_blocks(REPO / "docs" / "INTEGRATIONS.md")
    assert len(blocks) == 5 and "openai" in blocks[0] and "langchain_mcp" in blocks[1] and "crewai" in blocks[4]
    # MCP over HTTP (OpenAI Agents SDK, langchain-mcp-adapters), as an agent
    # made with `synod agent token` and admitted by the admin.
    made = json.loads(run_cli("agent", "token", "--json").stdout)
    with team.client(team.admin) as admin:
        admin.grant(made["did"], authorities={"fraud.*": "0.8"}, roles=["agent"])
    os.environ["SYNOD_AGENT_TOKEN"] = made["token"]
    try:
        mcp_namespace: dict[str, Any] = {}
        exec(blocks[0], mcp_namespace)
        assert mcp_namespace["openai_agent"].name == "fraud reviewer"
        exec(blocks[1], mcp_namespace)
    finally:
        del os.environ["SYNOD_AGENT_TOKEN"]
    out = capsys.readouterr().out
    assert "'list_open_proposals'" in out and "'respond'" in out
    assert made["did"] in out  # whoami through LangChain's MCP adapter
    key = Keypair.generate()
    key.save(Path(os.environ["SYNOD_CONFIG_DIR"]) / "keys" / "fraud-bot.json")
    with team.client(team.admin) as admin:
        admin.grant(key.did, authorities={"fraud.*": "0.8"}, roles=["agent"])
    prompts: list[str] = []

    def ask_model(prompt: str) -> dict[str, Any]:
        prompts.append(prompt)
        return {"stance": "challenge", "confidence": 0.7, "reasoning": "the model doubts it"}

    namespace: dict[str, Any] = {"ask_model": ask_model}
    loop, pid = run_loop_block(blocks[2], namespace, team, "block_card", {"card": "1"})
    assert loop.handled[pid] == "responded" and len(prompts) == 1 and "fraud.detection" in prompts[0]
    with team.client() as node:
        assert [(r["stance"], r["confidence"], r["reasoning"]) for r in node.proposal(pid)["responses"]] == [
            ("challenge", "0.7", "the model doubts it")
        ]
    # LangChain (the CrewAI block runs in python/tests_crewai).
    exec(blocks[3], namespace)
    out = capsys.readouterr().out
    assert "synod_list_open_proposals" in out and pid in out
    assert [t.name for t in namespace["reviewer_tools"]] == [
        "synod_list_open_proposals",
        "synod_get_proposal",
        "synod_respond",
    ]
