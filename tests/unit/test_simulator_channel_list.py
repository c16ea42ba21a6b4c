"""The simulator's channel list lags its core both ways, as FreeSWITCH's SQL table does."""

from __future__ import annotations

from callworker.simulator.channel import Channel, now_us
from callworker.simulator.switch import Switch, Timing


def channel(n: int, created_s_ago: float) -> Channel:
    return Channel(uuid=f"u{n}", name=f"sofia/gateway/gw/{n}", number=str(n), cid_name="",
                   cid_num="", session_id=n, created_us=now_us() - int(created_s_ago * 1e6))


def switch(lag: float) -> Switch:
    sw = Switch("sim", "127.0.0.1", Timing(0.01, 0.01, 1.0))
    sw.list_lag = lag
    return sw


def test_without_lag_the_list_is_the_live_channels_oldest_first() -> None:
    sw = switch(0.0)
    young, old = channel(1, 0.0), channel(2, 5.0)
    for ch in (young, old):
        sw.add_channel(ch)
    sw.forget(channel(3, 9.0))
    assert [ch.uuid for ch in sw.listed()] == ["u2", "u1"]


def test_a_channel_is_listed_lag_after_it_is_made_and_until_lag_after_it_is_gone() -> None:
    sw = switch(2.0)
    new, settled, gone_now, gone_long_ago = channel(1, 0.5), channel(2, 3.0), channel(3, 4.0), channel(4, 9.0)
    for ch in (new, settled, gone_now, gone_long_ago):
        sw.add_channel(ch)
    sw.forget(gone_now)
    sw.forget(gone_long_ago)
    gone_long_ago.destroyed_us -= 5_000_000
    assert [ch.uuid for ch in sw.listed()] == ["u3", "u2"]
    assert sw.find("u3") is None  # the core no longer has it: uuid_exists says false
