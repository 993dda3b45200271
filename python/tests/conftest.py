"""Fixtures: a real ``synod serve`` (the binary named by ``SYNOD_BIN``) on a
free port with a temporary data directory, and a team admitted to it."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from synod import Client, Keypair

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "vectors"


def synod_bin() -> str:
    path = os.environ.get("SYNOD_BIN", "")
    if not path or not os.access(path, os.X_OK):
        raise pytest.UsageError(
            f"SYNOD_BIN must name the synod binary (got {path!r}); build it with "
            "`cargo build -p synod-cli` and set SYNOD_BIN=target/debug/synod"
        )
    return path


def pytest_configure(config: pytest.Config) -> None:
    # Fail loudly, never skip: every server test needs the binary.
    synod_bin()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs the synod CLI; fails the test on a non-zero exit."""
    result = subprocess.run(
        [synod_bin(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise AssertionError(f"synod {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


class Server:
    """A running ``synod serve``; killed with SIGKILL by :meth:`kill`."""

    def __init__(self, data_dir: Path, extra: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0

    def start(self, listen: str = "127.0.0.1:0") -> Server:
        process = subprocess.Popen(
            [synod_bin(), "serve", "--listen", listen, "--data-dir", str(self.data_dir), *self.extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stderr is not None
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(30)
        line = first[0].strip() if first else ""
        if not line.startswith("listening on "):
            process.kill()
            raise AssertionError(f"synod serve did not start: {line!r} {process.stderr.read()}")
        # Keep draining both pipes so the server never blocks on them.
        for pipe in (process.stdout, process.stderr):
            threading.Thread(target=lambda p=pipe: [None for _ in p], daemon=True).start()
        self.process = process
        self.url = line.removeprefix("listening on ")
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        """Kills the node and starts it again on the same port and data."""
        self.kill()
        self.start(f"127.0.0.1:{self.port}")

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "admin.key"

    def admin(self) -> Keypair:
        return Keypair.load(self.admin_key_path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    node = Server(tmp_path / "data").start()
    try:
        yield node
    finally:
        node.kill()


@pytest.fixture
def admin_client(server: Server) -> Iterator[Client]:
    with Client(server.url, key=server.admin()) as client:
        yield client


@dataclass
class Team:
    """A closed space: alice (fraud.* 1), bob (0.8) and carol (0.5) as agents,
    oscar the oracle, and a reviewer admitted with ``synod reviewer add``."""

    server: Server
    admin: Keypair
    alice: Keypair
    bob: Keypair
    carol: Keypair
    oscar: Keypair
    reviewer_token: str
    reviewer_did: str

    def client(self, key: Keypair | None = None, url: str | None = None) -> Client:
        return Client(url or self.server.url, key=key)


def admit(client: Client, name: str, authorities: dict[str, str], roles: list[str]) -> Keypair:
    """The admin grants a fresh key, which then registers."""
    key = Keypair.generate()
    client.grant(key.did, authorities=authorities, roles=roles)
    client.register(name, vendor="test", authorities=authorities, key=key)
    return key


@pytest.fixture
def team(server: Server, admin_client: Client) -> Team:
    alice = admit(admin_client, "alice", {"fraud.*": "1"}, ["agent"])
    bob = admit(admin_client, "bob", {"fraud.*": "0.8"}, ["agent"])
    carol = admit(admin_client, "carol", {"fraud.*": "0.5"}, ["agent"])
    oscar = admit(admin_client, "oscar", {}, ["oracle"])
    added = run_cli(
        "reviewer", "add", "rita", "--admin-key", str(server.admin_key_path), "--node", server.url, "--json"
    )
    import json

    reviewer = json.loads(added.stdout)
    return Team(server, server.admin(), alice, bob, carol, oscar, reviewer["token"], reviewer["did"])
