"""LangChain tools over :class:`synod.integrations.tools.SynodTools`.

Needs ``langchain-core`` (``pip install 'synod-client[langchain]'``); it is
imported only when :func:`synod_tools` is called.

>>> from synod import Client, Keypair
>>> from synod.integrations.langchain import synod_tools
>>> tools = synod_tools(Client("http://127.0.0.1:7420", key=Keypair.load_named()))
>>> # e.g. create_agent(model, tools) or model.bind_tools(tools)
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from ..client import Client
from ._schema import args_model
from .tools import SynodTools

__all__ = ["synod_tools"]


def synod_tools(client: Client | SynodTools, *, names: Sequence[str] | None = None) -> list[Any]:
    """LangChain ``StructuredTool``s: list open proposals, read a proposal,
    propose, respond, check status, report an outcome. ``names`` picks a
    subset (e.g. a reviewer-only agent without ``synod_propose``)."""
    try:
        tools_module = importlib.import_module("langchain_core.tools")
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("synod's LangChain tools need langchain-core: pip install 'synod-client[langchain]'") from e
    toolkit = client if isinstance(client, SynodTools) else SynodTools(client)
    out: list[Any] = []
    for spec, function in toolkit.bound():
        if names is not None and spec.name not in names:
            continue
        out.append(
            tools_module.StructuredTool.from_function(
                func=function,
                name=spec.name,
                description=spec.description,
                args_schema=args_model(spec),
            )
        )
    return out
