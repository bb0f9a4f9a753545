"""Failed AUTH throttled per source address across connections; no short tokens (row 18)."""

from __future__ import annotations

import pytest

from broker.config import TOKEN_MIN, Config
from broker.errors import ErrorCode
from broker.protocol.codec import Invalid
from broker.protocol.requests import Auth
from broker.server.auth import Answered, AuthGate, AuthState
from broker.server.throttle import BURST, AuthThrottle, source_of
from tests.conftest import ServerFactory, one_backend, one_loop
from tests.support import LineClient, closed_by_server, run_python

TOKEN = "throttle-token-0123456789"

# ------------------------------------------------------------ the throttle


def test_a_source_has_a_burst_then_one_attempt_per_interval() -> None:
    throttle = AuthThrottle(burst=3, per_s=0.5)
    for _ in range(3):
        assert throttle.wait_s("10.0.0.1", 100.0) == 0.0
        throttle.failed("10.0.0.1", 100.0)
    assert throttle.wait_s("10.0.0.1", 100.0) == pytest.approx(2.0)
    assert throttle.wait_s("10.0.0.2", 100.0) == 0.0  # another source is not affected
    assert throttle.wait_s("10.0.0.1", 101.0) == pytest.approx(1.0)
    assert throttle.wait_s("10.0.0.1", 102.0) == 0.0  # one attempt back
    throttle.failed("10.0.0.1", 102.0)
    assert throttle.wait_s("10.0.0.1", 102.0) > 0


def test_the_throttle_forgets_refilled_sources_and_stays_bounded() -> None:
    throttle = AuthThrottle(burst=2, per_s=1.0, max_sources=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", float(i) * 0.001)
    assert len(throttle) <= 100
    # sources that failed long ago have refilled: they are forgotten as others fail
    throttle.failed("10.9.9.9", 1000.0)
    throttle.failed("10.9.9.8", 1000.0)
    assert len(throttle) <= 100


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("/run/wonderq.sock", "/run/wonderq.sock"),
    ],
)
def test_a_source_is_an_ipv4_address_or_an_ipv6_64(host: str, source: str) -> None:
    assert source_of(host) == source


def test_a_throttled_source_is_refused_without_comparing_its_token() -> None:
    throttle = AuthThrottle(burst=1, per_s=0.1)
    guesser = AuthGate(TOKEN, throttle=throttle, source="192.0.2.1")
    (wrong,) = guesser.screen([Auth(token="guess")], now=0.0)
    assert isinstance(wrong, Invalid) and guesser.state is AuthState.LOCKED
    # a new connection from the same source, with the right token: refused, not compared
    retry = AuthGate(TOKEN, throttle=throttle, source="192.0.2.1")
    (refused,) = retry.screen([Auth(token=TOKEN)], now=1.0)
    assert isinstance(refused, Invalid) and refused.error.code is ErrorCode.UNAUTHORIZED
    assert "too many failed AUTH attempts" in refused.error.message
    assert "try again in 9 s" in refused.error.message and retry.state is AuthState.REFUSED
    # another source is let in; once the bucket refills, so is this one
    other = AuthGate(TOKEN, throttle=throttle, source="192.0.2.2")
    assert isinstance(other.screen([Auth(token=TOKEN)], now=1.0)[0], Answered)
    later = AuthGate(TOKEN, throttle=throttle, source="192.0.2.1")
    assert isinstance(later.screen([Auth(token=TOKEN)], now=10.0)[0], Answered)


# --------------------------------------------------------------- over TCP


async def test_reconnecting_buys_no_more_guesses(server_factory: ServerFactory) -> None:
    """Wrong tokens over many connections from one address: past the burst, every AUTH
    (even the right one) is refused and its connection closed."""
    async with server_factory(token=TOKEN) as srv:
        guesses = 0
        refused = None
        for _ in range(BURST + 2):  # 3 guesses a connection, the lockout per connection
            async with await LineClient.connect(srv.port) as c:
                for _ in range(3):
                    reply = await c.call(op="AUTH", token=f"guess-{guesses}")
                    guesses += 1
                    if "too many failed AUTH attempts" in reply["message"]:
                        refused = reply
                        break
                if refused is not None:
                    break
        assert refused is not None and refused["error"] == "unauthorized"
        assert guesses == BURST + 1  # the burst, then the refusal
        async with await LineClient.connect(srv.port) as c:
            reply = await c.call(op="AUTH", token=TOKEN)
            assert "too many failed AUTH attempts" in reply["message"]
            assert await closed_by_server(c)
        assert srv.auth_throttle is not None and len(srv.auth_throttle) == 1


async def test_a_right_token_costs_nothing(server_factory: ServerFactory) -> None:
    async with server_factory(token=TOKEN) as srv:
        for _ in range(BURST * 2):
            async with await LineClient.connect(srv.port) as c:
                assert await c.call(op="AUTH", token=TOKEN) == {"ok": True}
        assert srv.auth_throttle is not None and len(srv.auth_throttle) == 0


# ----------------------------------------------------------- short tokens


def test_config_refuses_a_token_shorter_than_the_minimum() -> None:
    with pytest.raises(ValueError, match=r"token must be 16-4096 characters") as refused:
        Config(token="x" * (TOKEN_MIN - 1))
    assert "secrets.token_urlsafe" in str(refused.value)
    assert Config(token="x" * TOKEN_MIN).token == "x" * TOKEN_MIN


def test_a_token_that_cannot_fit_an_auth_line_before_auth_is_refused() -> None:
    with pytest.raises(ValueError, match=r"fit in an AUTH line of 8192 bytes"):
        Config(token="\u00e9" * 2000)  # 2000 characters, 12,000 bytes escaped


@one_backend  # its brokers are processes
@one_loop
async def test_serve_exits_2_on_a_short_token_and_says_how_to_make_one() -> None:
    code, out, err = await run_python("-m", "broker", "serve", "--port", "0", "--token", "hunter2")
    assert code == 2 and out == ""
    assert "token must be 16-4096 characters" in err and "can be guessed" in err
    assert 'python -c "import secrets; print(secrets.token_urlsafe(24))"' in err
