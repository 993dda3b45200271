"""Key files and ids, and their compatibility with the Rust CLI."""

from __future__ import annotations

import json
import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from synod import DidError, KeyFileError, Keypair, new_reviewer_token, public_key_from_did, reviewer_keypair, to_decimal
from synod.keys import named_key_path

from .conftest import run_cli


def test_a_key_file_round_trips_with_mode_0600_and_is_not_overwritten(tmp_path: Path) -> None:
    key = Keypair.generate()
    path = key.save(tmp_path / "keys" / "me.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Keypair.load(path) == key
    assert set(json.loads(path.read_text())) == {"did", "seed"}
    with pytest.raises(KeyFileError, match="already exists"):
        Keypair.generate().save(path)
    other = Keypair.generate()
    os.chmod(path, 0o644)
    other.save(path, force=True)
    assert Keypair.load(path) == other
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_key_file_whose_did_does_not_match_is_refused(tmp_path: Path) -> None:
    a, b = Keypair.generate(), Keypair.generate()
    text = json.loads(a.to_json())
    text["did"] = b.did
    (tmp_path / "k.json").write_text(json.dumps(text))
    with pytest.raises(KeyFileError, match="does not match"):
        Keypair.load(tmp_path / "k.json")
    (tmp_path / "x.json").write_text(json.dumps({"did": a.did, "seed": "short", "extra": 1}))
    with pytest.raises(KeyFileError):
        Keypair.load(tmp_path / "x.json")


def test_a_key_made_by_synod_keygen_loads_in_python(tmp_path: Path) -> None:
    path = tmp_path / "rust.json"
    did = run_cli("keygen", "--out", str(path)).stdout.strip()
    key = Keypair.load(path)
    assert key.did == did


def test_a_key_saved_by_python_loads_in_synod(tmp_path: Path) -> None:
    key = Keypair.generate()
    key.save(tmp_path / "py.json")
    assert run_cli("did", "--key", str(tmp_path / "py.json")).stdout.strip() == key.did


def test_named_keys_live_where_the_cli_puts_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNOD_CONFIG_DIR", str(tmp_path))
    did = run_cli("keygen", "--name", "worker-1", env={"SYNOD_CONFIG_DIR": str(tmp_path)}).stdout.strip()
    assert named_key_path("worker-1") == tmp_path / "keys" / "worker-1.json"
    assert Keypair.load_named("worker-1").did == did
    with pytest.raises(KeyFileError):
        named_key_path("../escape")


def test_did_key_encoding_is_checked() -> None:
    key = Keypair.generate()
    assert key.did.startswith("did:key:z6Mk") and len(key.did) == 56
    assert public_key_from_did(key.did) == key.public_key
    for bad in ["", "did:key:", "did:web:example.com", key.did[:-1], key.did + "1", key.did.replace("did:key:z", "did:key:f")]:
        with pytest.raises(DidError):
            public_key_from_did(bad)


def test_reviewer_tokens_stand_for_one_key() -> None:
    token = new_reviewer_token()
    assert token.startswith("synod_rt_")
    assert reviewer_keypair(token) == reviewer_keypair(token)
    assert reviewer_keypair(token) != reviewer_keypair(new_reviewer_token())
    for bad in ["synod_rt_short", token.replace("synod_rt_", "x")]:
        with pytest.raises(ValueError):
            reviewer_keypair(bad)


def test_decimals_are_written_as_the_protocol_reads_them() -> None:
    assert to_decimal(0.85) == "0.85"
    assert to_decimal(1) == "1"
    assert to_decimal(1.0) == "1"
    assert to_decimal(0.1 + 0.2) == "0.3"
    assert to_decimal(0.0000004) == "0"
    assert to_decimal(Decimal("0.500000")) == "0.5"
    assert to_decimal("0.1234567") == "0.1234567"  # strings are the caller's, checked by the node
    with pytest.raises(ValueError):
        to_decimal(Decimal("0.1234567"))
    with pytest.raises(ValueError):
        to_decimal(float("nan"))
    with pytest.raises(TypeError):
        to_decimal(True)
