"""Pydantic argument models for the tool specs (pydantic comes with both
LangChain and CrewAI; it is imported only when a framework adapter is used)."""

from __future__ import annotations

import importlib
from typing import Any

from .tools import ToolSpec


def args_model(spec: ToolSpec) -> Any:
    """A pydantic model of the tool's arguments, with their descriptions."""
    pydantic = importlib.import_module("pydantic")
    fields: dict[str, Any] = {}
    for arg in spec.args:
        if arg.required:
            fields[arg.name] = (arg.type, pydantic.Field(..., description=arg.description))
        else:
            fields[arg.name] = (arg.type, pydantic.Field(arg.default, description=arg.description))
    name = "".join(part.capitalize() for part in spec.name.split("_")) + "Args"
    return pydantic.create_model(name, **fields)
