"""The cost ledger: one row per model call, kept in a small SQLite database in the state directory.

Every completion or command that reaches a model is recorded with its tier (``local`` or
``cloud``), token counts, latency and price. The ledger answers three questions:

* what did the cloud cost today (``spent_today``), and may another call go out without breaking
  ``cloud.dailyBudgetUsd`` (``within_budget``);
* what did the local model save: a local call costs nothing, and is credited with what the same
  tokens would have cost on the reference cloud model;
* a JSON summary for the status command (``stats``).

Prices are USD per million tokens, looked up by longest model-name prefix, so dated names such as
``claude-sonnet-4-5-20250929`` find ``claude-sonnet-4-5``. A model not in the table (a proxy's
alias, a future model) is priced as ``claude-sonnet-4-5``: a middle estimate rather than zero, so
the budget still holds. ``Ledger(prices=...)`` overrides or extends the table.

The database is opened in WAL mode and each ``record()`` commits on its own. If it cannot be opened
(corrupt, locked, read-only disk) the ledger logs a warning and keeps working in memory: the server
must never stop completing code because its accounting failed.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from tandem_lsp.safe_text import clean

__all__ = [
    "DEFAULT_PRICE_MODEL",
    "PRICES",
    "SCHEMA_VERSION",
    "Ledger",
    "Price",
    "lookup_price",
    "state_dir",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 1.0  # how long to wait for another Tandem process holding the write lock
TIERS = ("local", "cloud")


# --- state directory -------------------------------------------------------------------------------

def state_dir() -> Path:
    """Return Tandem's per-user state directory, creating it if needed.

    Precedence: ``$TANDEM_STATE_DIR``; else ``$XDG_STATE_HOME/tandem`` (an absolute path, as the
    XDG spec requires; a relative one is ignored); else the platform default:
    ``~/.local/state/tandem`` on Linux and other Unixes, ``~/Library/Application Support/tandem``
    on macOS, ``%LOCALAPPDATA%\\tandem`` on Windows. Empty variables count as unset.

    Raises ``OSError`` if the directory cannot be created.
    """
    explicit = os.environ.get("TANDEM_STATE_DIR")
    if explicit:
        path = Path(explicit).expanduser()
    elif (xdg := os.environ.get("XDG_STATE_HOME")) and os.path.isabs(xdg):
        path = Path(xdg) / "tandem"
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "tandem"
    elif sys.platform == "win32":
        local_appdata = os.environ.get("LOCALAPPDATA")
        path = (Path(local_appdata) if local_appdata else Path.home() / "AppData" / "Local") / "tandem"
    else:
        path = Path.home() / ".local" / "state" / "tandem"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- prices ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Price:
    """USD per million tokens. ``cache_write`` is the 5-minute cache-write price (1.25x input)."""

    input: float
    output: float
    cache_write: float
    cache_read: float


_OPUS_4 = Price(15.0, 75.0, 18.75, 1.50)
_OPUS_4_5 = Price(5.0, 25.0, 6.25, 0.50)
_SONNET = Price(3.0, 15.0, 3.75, 0.30)
_HAIKU_4_5 = Price(1.0, 5.0, 1.25, 0.10)
_HAIKU_3_5 = Price(0.8, 4.0, 1.0, 0.08)

#: Anthropic list prices as of 2025, keyed by model-name prefix (longest prefix wins).
PRICES: Mapping[str, Price] = {
    "claude-opus-4-5": _OPUS_4_5,  # cheaper than Opus 4/4.1; listed so "claude-opus-4" does not catch it
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4": _OPUS_4,
    "claude-sonnet-4-5": _SONNET,
    "claude-sonnet-4": _SONNET,
    "claude-3-7-sonnet": _SONNET,
    "claude-haiku-4-5": _HAIKU_4_5,
    "claude-3-5-haiku": _HAIKU_3_5,
}

#: Models not in the table are priced like this one.
DEFAULT_PRICE_MODEL = "claude-sonnet-4-5"


def _prefix_matches(model: str, prefix: str) -> bool:
    """``prefix`` names ``model``: equal, or followed by a non-digit (so "-4-1" is not "-4-10")."""
    if not model.startswith(prefix):
        return False
    rest = model[len(prefix):]
    return not rest or not rest[0].isdigit()


def lookup_price(model: str, prices: Mapping[str, Price] | None = None) -> Price:
    """Price for ``model``: the entry with the longest matching prefix, else the Sonnet price."""
    table = PRICES if prices is None else prices
    name = (model or "").strip().lower()
    best = max((p for p in table if _prefix_matches(name, p.lower())), key=len, default=None)
    if best is not None:
        return table[best]
    return table.get(DEFAULT_PRICE_MODEL, PRICES[DEFAULT_PRICE_MODEL])


_OVERRIDE_KEYS = {
    "input": "input",
    "output": "output",
    "cache_write": "cache_write",
    "cacheWrite": "cache_write",
    "cache_read": "cache_read",
    "cacheRead": "cache_read",
}


def _merge_prices(overrides: Mapping[str, Mapping[str, float]] | None) -> dict[str, Price]:
    """The built-in table with ``overrides`` applied.

    Each override is ``{"input": x, "output": y, "cache_write": w, "cache_read": r}`` (camelCase
    ``cacheWrite``/``cacheRead`` accepted). Keys left out keep the built-in value for that exact
    model; for a new model ``input`` and ``output`` are required and the cache prices default to
    Anthropic's usual 1.25x and 0.1x of input. Raises ``ValueError`` on a malformed entry.
    """
    table = dict(PRICES)
    for model, spec in (overrides or {}).items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"price for {model!r} must be a mapping, got {type(spec).__name__}")
        values: dict[str, float] = {}
        for key, value in spec.items():
            if key not in _OVERRIDE_KEYS:
                raise ValueError(f"unknown price key {key!r} for {model!r}")
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not is_number or not math.isfinite(value) or value < 0:
                raise ValueError(f"price {key!r} for {model!r} must be a non-negative number, got {value!r}")
            values[_OVERRIDE_KEYS[key]] = float(value)
        base = table.get(model)
        if base is None:
            if "input" not in values or "output" not in values:
                raise ValueError(f"price for new model {model!r} needs 'input' and 'output'")
            values.setdefault("cache_write", values["input"] * 1.25)
            values.setdefault("cache_read", values["input"] * 0.1)
            table[model] = Price(**values)
        else:
            table[model] = replace(base, **values)
    return table


# --- the ledger ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id                  INTEGER PRIMARY KEY,
    ts                  REAL    NOT NULL,              -- unix seconds
    day                 TEXT    NOT NULL,              -- local calendar date, YYYY-MM-DD
    tier                TEXT    NOT NULL CHECK (tier IN ('local', 'cloud')),
    task                TEXT    NOT NULL,
    model               TEXT    NOT NULL,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
    latency_ms          REAL    NOT NULL DEFAULT 0,
    cost_usd            REAL    NOT NULL DEFAULT 0,
    saved_usd           REAL    NOT NULL DEFAULT 0,
    fallback_reason     TEXT,
    ok                  INTEGER NOT NULL DEFAULT 1 CHECK (ok IN (0, 1))
);
CREATE INDEX IF NOT EXISTS calls_day_tier ON calls (day, tier);
CREATE INDEX IF NOT EXISTS calls_tier_latency ON calls (tier, ok, latency_ms);
"""


def _round_usd(value: float | None) -> float:
    return round(value or 0.0, 6)


class Ledger:
    """Records model calls and answers budget and statistics questions.

    ``path`` defaults to ``state_dir()/ledger.sqlite3``. ``prices`` overrides or extends the price
    table (see ``_merge_prices``). ``reference_model`` is the cloud model a local call's savings are
    measured against. ``clock`` returns unix seconds; it stamps each call and decides "today".

    Not thread-safe by design: use it from the server's one asyncio thread. Every method is a short
    synchronous SQLite call (well under a millisecond for ``record``), so no executor is needed.
    Several Tandem processes (one per editor window) may share the file; WAL lets them.

    Token counts follow Anthropic's ``usage``: ``input_tokens`` is uncached input only, and cache
    writes and reads are counted separately.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        prices: Mapping[str, Mapping[str, float]] | None = None,
        reference_model: str = DEFAULT_PRICE_MODEL,
        clock: Callable[[], float] = time.time,
    ):
        self.prices: dict[str, Price] = _merge_prices(prices)
        self.reference_model = reference_model
        self._clock = clock
        self._unrecorded_spend: dict[str, float] = {}  # day -> cloud cost we failed to write
        self._warned: set[str] = set()
        self.path: Path | None = None  # None while the ledger lives in memory
        self._conn = self._open(path)

    # -- opening ------------------------------------------------------------------------------------

    def _open(self, path: Path | None) -> sqlite3.Connection:
        """Open (and if needed create) the database; fall back to memory with a warning."""
        try:
            path = Path(path) if path is not None else state_dir() / "ledger.sqlite3"
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            log.warning("cost ledger unavailable (%s); keeping this session's costs in memory only", exc)
            return self._open_memory()
        try:
            self._prepare(conn, wal=True)
        except sqlite3.Error as exc:
            conn.close()
            log.warning(
                "cost ledger %s cannot be used (%s); keeping this session's costs in memory only", path, exc
            )
            return self._open_memory()
        self.path = path
        return conn

    def _open_memory(self) -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        self._prepare(conn, wal=False)
        return conn

    @staticmethod
    def _prepare(conn: sqlite3.Connection, *, wal: bool) -> None:
        """Set the journal mode and create or migrate the schema."""
        if wal:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not enable WAL (journal_mode={mode})")
        # Durability: the connection is in autocommit mode, so every record() is its own
        # transaction, committed before record() returns. In WAL mode with synchronous=NORMAL a
        # commit write()s the transaction into the -wal file (the OS page cache) but skips the
        # fsync; the fsync happens at checkpoints. Data in the page cache survives the death of the
        # process (SIGKILL, crash, editor killing the server), so no recorded call is lost then;
        # only an OS crash or power cut can drop the last few calls. FULL would fsync on every
        # call (one per keystroke for local completions) to guard against that, which a cost
        # ledger does not need.
        conn.execute("PRAGMA synchronous=NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with conn:  # one transaction: the table, its indexes and the version appear together
                conn.execute("BEGIN IMMEDIATE")
                if conn.execute("PRAGMA user_version").fetchone()[0] == 0:  # another process may have won
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            # Written by a newer Tandem. Migrations only ever add columns, tables and indexes, so
            # the columns used here are still there.
            log.info("cost ledger schema v%s is newer than this server's v%s", version, SCHEMA_VERSION)
        # Future migrations: ``if version < 2: ALTER TABLE ...; PRAGMA user_version=2`` here.
        conn.execute("SELECT 1 FROM calls LIMIT 1").fetchall()  # fail now, not on the first record()

    @property
    def persistent(self) -> bool:
        """True when calls are written to a file, False after falling back to memory."""
        return self.path is not None

    # -- prices -------------------------------------------------------------------------------------

    def price(self, model: str) -> Price:
        """The price entry used for ``model`` (longest prefix match, else Sonnet)."""
        return lookup_price(model, self.prices)

    def cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_write_tokens: int = 0,
        cache_read_tokens: int = 0,
    ) -> float:
        """USD cost of a call on ``model`` with these token counts."""
        p = self.price(model)
        return (
            input_tokens * p.input
            + output_tokens * p.output
            + cache_write_tokens * p.cache_write
            + cache_read_tokens * p.cache_read
        ) / 1_000_000

    # -- recording ----------------------------------------------------------------------------------

    def record(
        self,
        *,
        tier: str,
        task: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        latency_ms: float,
        cache_write_tokens: int = 0,
        cache_read_tokens: int = 0,
        fallback_reason: str | None = None,
        ok: bool = True,
    ) -> float:
        """Record one model call and return its cost in USD.

        Cloud calls cost their tokens at ``model``'s price and save nothing. Local calls cost 0;
        a successful one is credited (``saved_usd``) with what its tokens would have cost on
        ``reference_model``; a failed one saved nothing. ``fallback_reason`` says why a call
        went to another tier than planned (e.g. "local-timeout").

        The row is committed before this returns. If the write fails (disk full, lock held too
        long) a warning is logged and the cost is still returned, and still counted by
        ``spent_today`` for the rest of this process. Raises ``ValueError`` for a bad tier or a
        negative count.
        """
        if tier not in TIERS:
            raise ValueError(f"tier must be 'local' or 'cloud', got {tier!r}")
        counts = (input_tokens, output_tokens, cache_write_tokens, cache_read_tokens)
        if any(n < 0 for n in counts):
            raise ValueError(f"token counts must be non-negative, got {counts}")
        if tier == "cloud":
            cost, saved = self.cost(model, *counts), 0.0
        else:
            cost, saved = 0.0, (self.cost(self.reference_model, *counts) if ok else 0.0)
        ts = self._clock()
        day = self._day(ts)
        # sqlite3 encodes text as UTF-8: a lone surrogate (a model name or an error echoing a file) would raise
        task, model, fallback_reason = clean(task), clean(model), clean(fallback_reason)
        try:
            self._conn.execute(
                "INSERT INTO calls (ts, day, tier, task, model, input_tokens, output_tokens,"
                " cache_write_tokens, cache_read_tokens, latency_ms, cost_usd, saved_usd,"
                " fallback_reason, ok) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ts, day, tier, task, model, *map(int, counts), float(latency_ms),
                 cost, saved, fallback_reason, int(bool(ok))),
            )
        except sqlite3.Error as exc:
            self._warn_once(f"could not record a {tier} call in the cost ledger: {exc}")
            if cost:
                self._unrecorded_spend[day] = self._unrecorded_spend.get(day, 0.0) + cost
        return cost

    # -- budget -------------------------------------------------------------------------------------

    def spent_today(self) -> float:
        """Cloud spend (USD) for today's local calendar date, across all processes sharing the file."""
        today = self._day(self._clock())
        spent = self._query_one(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE day = ? AND tier = 'cloud'", (today,)
        ) or 0.0
        return spent + self._unrecorded_spend.get(today, 0.0)

    def within_budget(self, daily_budget_usd: float, estimate_usd: float = 0.0) -> bool:
        """May a cloud call estimated at ``estimate_usd`` go out under ``daily_budget_usd``?

        A budget of 0 (or less, or NaN) means the cloud is never used. Otherwise the call is
        allowed while today's spend plus the estimate stays within the budget.
        """
        if not daily_budget_usd > 0:
            return False
        return self.spent_today() + max(estimate_usd, 0.0) <= daily_budget_usd + 1e-9

    # -- statistics ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A JSON-serialisable summary with camelCase keys.

        ``local``, ``cloud``, ``allTime``, ``fallbacks`` (calls with a fallback reason) and
        ``since`` (ISO 8601 time of the first call, local offset; None if there is none) cover the
        whole ledger. ``today``, ``costUsd`` and ``savedUsd`` cover today's local date only.
        ``local.latencyMsP50`` is the median latency of successful local calls (None if none).
        """
        tiers = {
            row[0]: row[1:]
            for row in self._query_all(
                "SELECT tier, COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
                " COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cost_usd), 0),"
                " COALESCE(SUM(saved_usd), 0) FROM calls GROUP BY tier"
            )
        }
        local = tiers.get("local", (0, 0, 0, 0, 0.0, 0.0))
        cloud = tiers.get("cloud", (0, 0, 0, 0, 0.0, 0.0))
        today = self._day(self._clock())
        rows = self._query_all(
            "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(saved_usd), 0)"
            " FROM calls WHERE day = ?",
            (today,),
        )
        t_calls, t_cost, t_saved = rows[0] if rows else (0, 0.0, 0.0)
        t_cost += self._unrecorded_spend.get(today, 0.0)
        fallbacks = self._query_one("SELECT COUNT(*) FROM calls WHERE fallback_reason IS NOT NULL") or 0
        first_ts = self._query_one("SELECT MIN(ts) FROM calls")
        since = (
            datetime.fromtimestamp(first_ts).astimezone().isoformat(timespec="seconds")
            if first_ts is not None else None
        )
        return {
            "local": {
                "calls": local[0],
                "inputTokens": local[1],
                "outputTokens": local[2],
                "latencyMsP50": self._local_latency_p50(),
            },
            "cloud": {
                "calls": cloud[0],
                "inputTokens": cloud[1],
                "outputTokens": cloud[2],
                "cacheReadTokens": cloud[3],
                "costUsd": _round_usd(cloud[4]),
            },
            "today": {"costUsd": _round_usd(t_cost), "savedUsd": _round_usd(t_saved), "calls": t_calls},
            "costUsd": _round_usd(t_cost),
            "savedUsd": _round_usd(t_saved),
            "allTime": {
                "costUsd": _round_usd(local[4] + cloud[4] + sum(self._unrecorded_spend.values())),
                "savedUsd": _round_usd(local[5] + cloud[5]),
                "calls": local[0] + cloud[0],
            },
            "fallbacks": fallbacks,
            "since": since,
        }

    def _local_latency_p50(self) -> float | None:
        """Median (nearest-rank) latency of successful local calls, via the (tier, ok, latency) index."""
        n = self._query_one("SELECT COUNT(*) FROM calls WHERE tier = 'local' AND ok = 1") or 0
        if not n:
            return None
        return self._query_one(
            "SELECT latency_ms FROM calls WHERE tier = 'local' AND ok = 1"
            " ORDER BY latency_ms LIMIT 1 OFFSET ?",
            ((n - 1) // 2,),
        )

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database. Safe to call twice; later records are dropped with a warning."""
        try:
            self._conn.close()
        except sqlite3.Error:  # pragma: no cover - closing never matters enough to fail
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _day(ts: float) -> str:
        """The local calendar date of unix time ``ts`` as YYYY-MM-DD."""
        return time.strftime("%Y-%m-%d", time.localtime(ts))

    def _query_all(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self._warn_once(f"could not read the cost ledger: {exc}")
            return []

    def _query_one(self, sql: str, params: tuple = ()) -> Any:
        rows = self._query_all(sql, params)
        return rows[0][0] if rows else None

    def _warn_once(self, message: str) -> None:
        """Log each distinct failure once as a warning, repeats at debug level (no log flood)."""
        if message in self._warned:
            log.debug(message)
        else:
            self._warned.add(message)
            log.warning(message)
