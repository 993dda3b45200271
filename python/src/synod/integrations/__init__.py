"""Adapters for agent frameworks. ``tools`` needs nothing beyond synod;
``langchain`` and ``crewai`` import their framework only when used."""
