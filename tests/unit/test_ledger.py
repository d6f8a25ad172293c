"""The cost ledger: prices, cost math, savings, budget, stats, durability and fallbacks."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tandem_lsp import ledger as ledger_mod
from tandem_lsp.ledger import PRICES, Ledger, Price, lookup_price, state_dir

NOON_TODAY = time.mktime((2025, 6, 10, 12, 0, 0, 0, 0, -1))
NOON_YESTERDAY = time.mktime((2025, 6, 9, 12, 0, 0, 0, 0, -1))


class Clock:
    """A settable clock for putting calls on chosen days."""

    def __init__(self, now: float = NOON_TODAY):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path, clock):
    with Ledger(tmp_path / "ledger.sqlite3", clock=clock) as led:
        yield led


def cloud(led: Ledger, model: str = "claude-sonnet-4-5", inp: int = 1_000_000, out: int = 0, **kw) -> float:
    return led.record(tier="cloud", task="explain", model=model, input_tokens=inp, output_tokens=out,
                      latency_ms=900, **kw)


def local(led: Ledger, inp: int = 1000, out: int = 100, latency_ms: float = 50, **kw) -> float:
    return led.record(tier="local", task="complete", model="qwen2.5-coder:1.5b", input_tokens=inp,
                      output_tokens=out, latency_ms=latency_ms, **kw)


# --- state_dir -------------------------------------------------------------------------------------

@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("TANDEM_STATE_DIR", "XDG_STATE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    return tmp_path


def test_state_dir_prefers_tandem_state_dir(clean_env, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(clean_env / "xdg"))
    monkeypatch.setenv("TANDEM_STATE_DIR", str(clean_env / "explicit" / "nested"))
    assert state_dir() == clean_env / "explicit" / "nested"
    assert state_dir().is_dir()  # created on demand


def test_state_dir_then_xdg_state_home(clean_env, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(clean_env / "xdg"))
    assert state_dir() == clean_env / "xdg" / "tandem"
    assert state_dir().is_dir()


def test_state_dir_ignores_empty_and_relative_variables(clean_env, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("TANDEM_STATE_DIR", "")
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")
    assert state_dir() == clean_env / "home" / ".local" / "state" / "tandem"


@pytest.mark.skipif(os.name == "nt", reason="POSIX home layout")
@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux", Path(".local/state/tandem")),
        ("darwin", Path("Library/Application Support/tandem")),
        ("win32", Path("AppData/Local/tandem")),  # LOCALAPPDATA unset
    ],
)
def test_state_dir_platform_defaults(clean_env, monkeypatch, platform, expected):
    monkeypatch.setattr(sys, "platform", platform)
    assert state_dir() == clean_env / "home" / expected


def test_state_dir_windows_uses_localappdata(clean_env, monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(clean_env / "lad"))
    assert state_dir() == clean_env / "lad" / "tandem"


def test_default_path_is_in_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TANDEM_STATE_DIR", str(tmp_path / "state"))
    with Ledger() as led:
        assert led.path == tmp_path / "state" / "ledger.sqlite3"
        assert led.persistent
        local(led)
    assert (tmp_path / "state" / "ledger.sqlite3").exists()


# --- prices and cost -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-4-1", Price(15, 75, 18.75, 1.50)),
        ("claude-opus-4-1-20250805", Price(15, 75, 18.75, 1.50)),
        ("claude-opus-4-20250514", Price(15, 75, 18.75, 1.50)),
        ("claude-sonnet-4-5-20250929", Price(3, 15, 3.75, 0.30)),
        ("claude-sonnet-4-20250514", Price(3, 15, 3.75, 0.30)),
        ("claude-3-7-sonnet-latest", Price(3, 15, 3.75, 0.30)),
        ("claude-haiku-4-5-20251001", Price(1, 5, 1.25, 0.10)),
        ("claude-3-5-haiku-20241022", Price(0.8, 4, 1.0, 0.08)),
        ("Claude-Haiku-4-5", Price(1, 5, 1.25, 0.10)),
        ("some-proxy-alias", Price(3, 15, 3.75, 0.30)),  # unknown: Sonnet
        ("", Price(3, 15, 3.75, 0.30)),
    ],
)
def test_price_lookup_by_prefix(model, expected):
    assert lookup_price(model) == expected


def test_prefix_must_end_at_a_name_boundary():
    # "claude-opus-4-1" must not claim a hypothetical "claude-opus-4-10"; the longest real prefix does.
    assert lookup_price("claude-opus-4-10") is PRICES["claude-opus-4"]
    assert lookup_price("claude-sonnet-4-5") is PRICES["claude-sonnet-4-5"]


def test_price_override_and_extension(tmp_path):
    with Ledger(tmp_path / "l.db", prices={
        "claude-sonnet-4-5": {"input": 2.0},  # partial: the rest kept
        "my-gateway": {"input": 10, "output": 20},  # new: cache prices derived from input
        "claude-haiku-4-5": {"input": 1, "output": 5, "cacheWrite": 2, "cacheRead": 0.5},
    }) as led:
        assert led.price("claude-sonnet-4-5-20250929") == Price(2.0, 15, 3.75, 0.30)
        assert led.price("my-gateway-v2") == Price(10, 20, 12.5, 1.0)
        assert led.price("claude-haiku-4-5") == Price(1, 5, 2, 0.5)
        assert led.price("unknown") == Price(2.0, 15, 3.75, 0.30)  # unknown follows the Sonnet entry
    assert PRICES["claude-sonnet-4-5"].input == 3.0  # the built-in table is untouched


@pytest.mark.parametrize(
    "prices",
    [{"new-model": {"input": 1}}, {"x": {"input": -1, "output": 1}}, {"x": {"inptu": 1, "output": 1}},
     {"x": 3}, {"x": {"input": "1", "output": 1}}],
)
def test_bad_price_overrides_are_rejected(tmp_path, prices):
    with pytest.raises(ValueError):
        Ledger(tmp_path / "l.db", prices=prices)


def test_cost_math_including_cache_tokens(ledger):
    assert ledger.cost("claude-sonnet-4-5", 1_000_000, 0) == pytest.approx(3.0)
    assert ledger.cost("claude-sonnet-4-5", 0, 1_000_000) == pytest.approx(15.0)
    # 2000 in, 500 out, 10k cache write, 100k cache read on Opus 4.1:
    expected = (2000 * 15 + 500 * 75 + 10_000 * 18.75 + 100_000 * 1.50) / 1e6
    assert ledger.cost("claude-opus-4-1-20250805", 2000, 500, 10_000, 100_000) == pytest.approx(expected)
    assert ledger.cost("claude-3-5-haiku-latest", 0, 0, cache_read_tokens=1_000_000) == pytest.approx(0.08)


def test_cloud_record_returns_cost_and_saves_nothing(ledger):
    cost = cloud(ledger, "claude-haiku-4-5", inp=1000, out=200, cache_write_tokens=4000, cache_read_tokens=8000)
    assert cost == pytest.approx((1000 * 1 + 200 * 5 + 4000 * 1.25 + 8000 * 0.10) / 1e6)
    row = ledger._conn.execute("SELECT cost_usd, saved_usd, tier, ok FROM calls").fetchone()
    assert row == (pytest.approx(cost), 0.0, "cloud", 1)


def test_local_calls_cost_nothing_and_save_the_reference_price(tmp_path, clock):
    with Ledger(tmp_path / "l.db", clock=clock, reference_model="claude-opus-4-1") as led:
        assert local(led, inp=1_000_000, out=1_000_000) == 0.0
        assert local(led, inp=1_000_000, out=1_000_000, ok=False) == 0.0  # failed: nothing saved
        stats = led.stats()
        assert led.spent_today() == 0.0
    assert stats["savedUsd"] == pytest.approx(15 + 75)
    assert stats["costUsd"] == 0.0


def test_record_rejects_bad_input(ledger):
    with pytest.raises(ValueError):
        ledger.record(tier="remote", task="t", model="m", input_tokens=1, output_tokens=1, latency_ms=1)
    with pytest.raises(ValueError):
        ledger.record(tier="cloud", task="t", model="m", input_tokens=-1, output_tokens=1, latency_ms=1)
    assert ledger.stats()["allTime"]["calls"] == 0


# --- budget ----------------------------------------------------------------------------------------

def test_budget_zero_means_never(ledger):
    assert not ledger.within_budget(0.0)
    assert not ledger.within_budget(0.0, estimate_usd=0.0)
    assert not ledger.within_budget(-1.0)
    assert not ledger.within_budget(float("nan"))


def test_budget_counts_today_only(ledger, clock):
    clock.now = NOON_YESTERDAY
    cloud(ledger, inp=1_000_000)  # $3 yesterday
    clock.now = NOON_TODAY
    assert ledger.spent_today() == 0.0
    assert ledger.within_budget(2.0)

    cloud(ledger, inp=500_000)  # $1.50 today
    local(ledger, inp=10_000_000)  # local calls never count
    assert ledger.spent_today() == pytest.approx(1.5)
    assert ledger.within_budget(2.0)
    assert ledger.within_budget(2.0, estimate_usd=0.5)  # exactly at the budget is allowed
    assert not ledger.within_budget(2.0, estimate_usd=0.51)

    cloud(ledger, inp=200_000)  # $0.60 more: $2.10
    assert not ledger.within_budget(2.0)
    clock.now = NOON_TODAY + 86_400  # a new day resets the spend
    assert ledger.within_budget(2.0)


def test_budget_is_shared_by_processes_using_the_same_file(tmp_path, clock):
    with Ledger(tmp_path / "l.db", clock=clock) as a, Ledger(tmp_path / "l.db", clock=clock) as b:
        cloud(a, inp=500_000)
        assert b.spent_today() == pytest.approx(1.5)


# --- stats -----------------------------------------------------------------------------------------

def test_stats_shape_and_values(ledger, clock):
    assert ledger.stats() == {
        "local": {"calls": 0, "inputTokens": 0, "outputTokens": 0, "latencyMsP50": None},
        "cloud": {"calls": 0, "inputTokens": 0, "outputTokens": 0, "cacheReadTokens": 0, "costUsd": 0.0},
        "today": {"costUsd": 0.0, "savedUsd": 0.0, "calls": 0},
        "costUsd": 0.0,
        "savedUsd": 0.0,
        "allTime": {"costUsd": 0.0, "savedUsd": 0.0, "calls": 0},
        "fallbacks": 0,
        "since": None,
    }

    clock.now = NOON_YESTERDAY
    cloud(ledger, inp=1_000_000)  # $3
    local(ledger, inp=1_000_000, out=0, latency_ms=10)  # saves $3
    clock.now = NOON_TODAY
    cloud(ledger, inp=100_000, out=1000, cache_read_tokens=50_000, fallback_reason="local-timeout")
    local(ledger, inp=100_000, out=0, latency_ms=30)
    local(ledger, inp=100_000, out=0, latency_ms=20)
    local(ledger, inp=100_000, out=0, latency_ms=999, ok=False)  # not in the latency median

    stats = ledger.stats()
    json.dumps(stats)  # serialisable
    today_cost = (100_000 * 3 + 1000 * 15 + 50_000 * 0.30) / 1e6
    assert stats["local"] == {"calls": 4, "inputTokens": 1_300_000, "outputTokens": 0, "latencyMsP50": 20}
    assert stats["cloud"] == {"calls": 2, "inputTokens": 1_100_000, "outputTokens": 1000,
                              "cacheReadTokens": 50_000, "costUsd": pytest.approx(3 + today_cost)}
    assert stats["today"] == {"costUsd": pytest.approx(today_cost), "savedUsd": pytest.approx(0.6), "calls": 4}
    assert stats["costUsd"] == stats["today"]["costUsd"]
    assert stats["savedUsd"] == stats["today"]["savedUsd"]
    assert stats["allTime"] == {"costUsd": pytest.approx(3 + today_cost), "savedUsd": pytest.approx(3.6),
                                "calls": 6}
    assert stats["fallbacks"] == 1
    assert stats["since"].startswith("2025-06-09T12:00:00")


def test_stats_rows_carry_day_and_fields(ledger, clock):
    clock.now = NOON_YESTERDAY
    local(ledger, fallback_reason="cloud-over-budget")
    row = ledger._conn.execute(
        "SELECT ts, day, tier, task, model, latency_ms, fallback_reason, ok FROM calls"
    ).fetchone()
    assert row == (NOON_YESTERDAY, "2025-06-09", "local", "complete", "qwen2.5-coder:1.5b", 50.0,
                   "cloud-over-budget", 1)


# --- storage ---------------------------------------------------------------------------------------

def test_wal_mode_schema_version_and_columns(ledger, tmp_path):
    local(ledger)
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == ledger_mod.SCHEMA_VERSION
        columns = [r[1] for r in conn.execute("PRAGMA table_info(calls)")]
    finally:
        conn.close()
    assert columns == ["id", "ts", "day", "tier", "task", "model", "input_tokens", "output_tokens",
                       "cache_write_tokens", "cache_read_tokens", "latency_ms", "cost_usd", "saved_usd",
                       "fallback_reason", "ok"]
    assert ledger._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_reopening_keeps_history(tmp_path, clock):
    with Ledger(tmp_path / "l.db", clock=clock) as led:
        cloud(led, inp=1_000_000)
    with Ledger(tmp_path / "l.db", clock=clock) as led:
        assert led.spent_today() == pytest.approx(3.0)
        assert led.stats()["allTime"]["calls"] == 1


def test_corrupt_file_falls_back_to_memory(tmp_path, clock, caplog):
    path = tmp_path / "ledger.sqlite3"
    garbage = b"this is not a database" * 500
    path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="tandem_lsp.ledger"):
        led = Ledger(path, clock=clock)
    assert "cost ledger" in caplog.text
    assert not led.persistent
    assert cloud(led, inp=1_000_000) == pytest.approx(3.0)  # keeps working
    assert led.spent_today() == pytest.approx(3.0)
    assert led.stats()["allTime"]["calls"] == 1
    led.close()
    assert path.read_bytes() == garbage  # the user's file is left alone


def test_unopenable_path_falls_back_to_memory(tmp_path, caplog):
    (tmp_path / "a-directory").mkdir()
    with caplog.at_level(logging.WARNING, logger="tandem_lsp.ledger"):
        led = Ledger(tmp_path / "a-directory")
    assert not led.persistent and "cost ledger" in caplog.text
    local(led)
    led.close()


def test_locked_database_falls_back_and_write_failures_are_tolerated(tmp_path, clock, monkeypatch, caplog):
    monkeypatch.setattr(ledger_mod, "BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "l.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("CREATE TABLE other (x)")
    blocker.execute("BEGIN EXCLUSIVE")  # rollback journal, exclusive: nobody else can even read
    try:
        with caplog.at_level(logging.WARNING, logger="tandem_lsp.ledger"):
            led = Ledger(path, clock=clock)
        assert not led.persistent and "cost ledger" in caplog.text
        led.close()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    # Opened fine, then another process holds the write lock too long: record() must not raise,
    # and the unwritten cloud spend still counts against today's budget.
    led = Ledger(path, clock=clock)
    assert led.persistent
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert cloud(led, inp=1_000_000) == pytest.approx(3.0)
        assert cloud(led, inp=1_000_000) == pytest.approx(3.0)
        assert led.spent_today() == pytest.approx(6.0)
        assert not led.within_budget(5.0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        led.close()


def test_record_after_close_does_not_raise(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.close()
    led.close()  # twice is fine
    assert cloud(led, inp=1_000_000) == pytest.approx(3.0)


CHILD = """
import os, signal, sys
from tandem_lsp.ledger import Ledger
n = int(sys.argv[1])
led = Ledger()
for i in range(n):
    led.record(tier="cloud" if i % 2 else "local", task="complete", model="claude-haiku-4-5",
               input_tokens=1000 + i, output_tokens=10, latency_ms=i)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_calls_survive_sigkill_right_after_record(tmp_path, monkeypatch):
    n = 25
    monkeypatch.setenv("TANDEM_STATE_DIR", str(tmp_path))
    result = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, timeout=60, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert (tmp_path / "ledger.sqlite3-wal").exists()  # killed before any clean shutdown checkpoint

    with Ledger() as led:
        assert led.persistent
        stats = led.stats()
        rows = led._conn.execute("SELECT input_tokens FROM calls ORDER BY id").fetchall()
    assert stats["allTime"]["calls"] == n
    assert [r[0] for r in rows] == [1000 + i for i in range(n)]  # the last call included
    assert stats["cloud"]["calls"] == n // 2
