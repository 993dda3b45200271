"""CrewAI tools over :class:`synod.integrations.tools.SynodTools`.

Needs ``crewai`` (``pip install 'synod-client[crewai]'``); it is imported only
when :func:`synod_tools` is called.

>>> from synod.integrations.crewai import synod_tools
>>> reviewer = Agent(role="Fraud reviewer", goal="...", backstory="...", tools=synod_tools(client))
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

from ..client import Client
from ._schema import args_model
from .tools import SynodTools

__all__ = ["synod_tools"]

_TOOL_CLASS: Any = None


def _tool_class() -> Any:
    """A CrewAI ``BaseTool`` subclass that calls a bound synod tool."""
    global _TOOL_CLASS
    if _TOOL_CLASS is None:
        try:
            base = importlib.import_module("crewai.tools").BaseTool
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("synod's CrewAI tools need crewai: pip install 'synod-client[crewai]'") from e
        private_attr = importlib.import_module("pydantic").PrivateAttr

        class SynodCrewAITool(base):  # type: ignore[misc,valid-type]
            _function: Callable[..., str] = private_attr()

            def _run(self, **arguments: Any) -> str:
                return self._function(**arguments)

        _TOOL_CLASS = SynodCrewAITool
    return _TOOL_CLASS


def synod_tools(client: Client | SynodTools, *, names: Sequence[str] | None = None) -> list[Any]:
    """CrewAI tools: list open proposals, read a proposal, propose, respond,
    check status, report an outcome. ``names`` picks a subset."""
    cls = _tool_class()
    toolkit = client if isinstance(client, SynodTools) else SynodTools(client)
    out: list[Any] = []
    for spec, function in toolkit.bound():
        if names is not None and spec.name not in names:
            continue
        tool = cls(name=spec.name, description=spec.description, args_schema=args_model(spec))
        tool._function = function
        out.append(tool)
    return out
