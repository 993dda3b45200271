"""The events iterator resumes after its connection is cut, without missing
or repeating an event; it stops when closed from another thread."""

from __future__ import annotations

import time

import pytest

from synod import Client, Event, EventStream, SynodError
from synod.events import SSEDecoder

from .conftest import Team
from .helpers import Collector, Proxy, expected_events, wait_for


def _activity(team: Team, node: Client, label: str) -> str:
    """A proposal and two responses: several entries, some with two effects."""
    pid = node.propose("fraud.detection", "block_card", label, 0.9, key=team.alice)["id"]
    node.respond(pid, "challenge", "0.6", key=team.carol)
    node.respond(pid, "endorse", "1", key=team.bob)
    return pid


def _ids(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.id, e.type) for e in events]


def test_the_decoder_follows_the_sse_rules() -> None:
    decoder = SSEDecoder()
    lines = [": synod events", "", "id: 3.0", "event: granted", 'data: {"agent":', 'data: "x"}', "", ": keepalive", "",
             "event: other", "data: 1", ""]
    events = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    assert [(e.id, e.type) for e in events] == [("3.0", "granted"), ("3.0", "other")]
    assert events[0].data == {"agent": "x"} and events[0].position == (3, 0)
    assert events[1].data == {"value": 1}


def test_history_then_live_events_match_the_log(team: Team) -> None:
    with team.client() as node:
        _activity(team, node, "history")
        stream = node.events(from_index=0)
        collector = Collector(stream)
        history = expected_events(node.log())
        got = collector.take(len(history))
        assert _ids(got) == history
        assert got[0].data["type"] == "space_created" and got[0].index == 0
        live_from = node.space()["head"]["next_index"]
        _activity(team, node, "live")
        live = expected_events(node.log(from_index=live_from))
        got_live = collector.take(len(live))
        assert _ids(got_live) == live
        closing = [e for e in got_live if e.type == "proposal_closed"]
        assert closing and closing[0].data["final"] is True and closing[0].data["status"] == "approved"
        assert collector.none_pending()
        stream.close()
        collector.thread.join(5)
        assert not collector.thread.is_alive(), "close() from another thread must end the iteration"


def test_a_stream_cut_mid_history_and_while_idle_resumes_exactly(team: Team) -> None:
    direct = team.client()
    for i in range(3):
        _activity(team, direct, f"before {i}")
    proxy = Proxy(team.server.port)
    try:
        with Client(proxy.url) as via_proxy:
            stream = via_proxy.events(from_index=0)
            collector = Collector(stream)
            got = collector.take(5)
            # Cut in the middle of the history.
            assert proxy.cut() >= 1
            head = direct.space()["head"]["next_index"]
            got += collector.take(len(expected_events(direct.log())) - 5)
            # Cut while the stream waits for live events, then make some.
            wait_for(lambda: stream.connections == 2, what="the second connection")
            proxy.cut()
            _activity(team, direct, "while cut")
            _activity(team, direct, "after")
            expected = expected_events(direct.log())
            got += collector.take(len(expected) - len(got))
            assert _ids(got) == expected, "every event once, in log order"
            assert collector.none_pending()
            assert stream.reconnects >= 2 and proxy.accepted >= 3
            assert head < direct.space()["head"]["next_index"]
            stream.close()
            collector.thread.join(5)
            assert not collector.thread.is_alive()
    finally:
        proxy.close()
        direct.close()


def test_a_stream_survives_a_node_restart(team: Team) -> None:
    with team.client() as node:
        stream = node.events()  # from the head: only new events
        collector = Collector(stream)
        start = node.space()["head"]["next_index"]
        time.sleep(0.3)
        _activity(team, node, "before restart")
        first = collector.take(len(expected_events(node.log(from_index=start))))
        team.server.restart()
        _activity(team, node, "after restart")
        expected = expected_events(node.log(from_index=start))
        rest = collector.take(len(expected) - len(first))
        assert _ids(first + rest) == expected
        assert stream.reconnects >= 1
        stream.close()


def test_resuming_from_a_last_event_id(team: Team) -> None:
    with team.client() as node:
        _activity(team, node, "one")
        everything = expected_events(node.log())
        middle = everything[len(everything) // 2][0]
        stream = node.events(last_event_id=middle, reconnect=False)
        collector = Collector(stream)
        got = collector.take(len(everything) - len(everything) // 2 - 1)
        assert _ids(got) == everything[len(everything) // 2 + 1 :]
        stream.close()


def test_a_position_beyond_the_log_is_refused_not_retried(team: Team) -> None:
    with team.client() as node:
        stream: EventStream = node.events(from_index=10_000)
        with pytest.raises(SynodError) as caught:
            next(stream)
        assert caught.value.kind == "malformed" and stream.reconnects == 0
