"""Deterministic fault injection: rules that match requests and make the emulator misbehave on purpose.

A rule matches on method, a path regex (searched in the request path, query excluded) and the request kind
(``graph``, ``identity``, ``upload``, ``download``, ``monitor``), then fires on the ``nth`` match, on ``every``
k-th match, or with a ``probability`` drawn from a seeded RNG, at most ``times`` times. The same rules can be
loaded from a JSON file (a list of objects with the same fields) by ``airflow-onedrive emulator --faults``.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["ACTIONS", "FaultRule", "Faults", "read_rules"]

Action = Literal["status", "latency", "reset", "truncate", "token_expired", "upload_session_expired", "eventual_404"]
#: The actions a rule can take.
ACTIONS: tuple[str, ...] = (
    "status",
    "latency",
    "reset",
    "truncate",
    "token_expired",
    "upload_session_expired",
    "eventual_404",
)
KINDS = ("graph", "identity", "upload", "download", "monitor", "control")


@dataclass
class FaultRule:
    """One rule. Action parameters:

    - ``status``: ``status`` (e.g. 429, 503), ``code`` (Graph error code), ``retry_after`` (int, float or a string
      sent verbatim; None sends no header), ``retry_after_http_date`` (send ``retry_after`` seconds as an HTTP-date).
    - ``latency``: ``seconds`` of delay before the request is handled normally.
    - ``reset``: close the connection with a TCP RST; ``when`` = ``before`` (request not processed) or ``after``
      (processed, response lost).
    - ``truncate``: send the headers and only ``after_bytes`` bytes of the body, then close the connection cleanly
      (the client gets exactly those bytes, then the end of the stream).
    - ``token_expired``: 401 InvalidAuthenticationToken as if the bearer token had expired.
    - ``upload_session_expired``: the upload session the request addresses expires first (so it gets a 404).
    - ``eventual_404``: the item a successful create returns answers 404 to its next ``reads`` reads.
    """

    action: Action
    method: str | None = None
    path: str | None = None
    kind: str | None = None
    nth: int | None = None
    every: int | None = None
    probability: float | None = None
    times: int | None = None
    status: int = 503
    code: str | None = None
    retry_after: float | int | str | None = None
    retry_after_http_date: bool = False
    seconds: float = 0.0
    when: Literal["before", "after"] = "before"
    after_bytes: int = 0
    reads: int = 1
    matched: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"fault action {self.action!r} is not one of {', '.join(ACTIONS)}")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if sum(x is not None for x in (self.nth, self.every, self.probability)) > 1:
            raise ValueError("a fault rule takes at most one of nth, every, probability")
        if self.when not in ("before", "after"):
            raise ValueError("fault 'when' must be 'before' or 'after'")
        self._regex = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str, kind: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.kind and self.kind != kind:
            return False
        return not (self._regex and not self._regex.search(path))

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-able fields (what a rules file holds)."""
        data = asdict(self)
        for counter in ("matched", "fired"):
            data.pop(counter)
        return {k: v for k, v in data.items() if v is not None}


def read_rules(path: str | Path) -> list[dict[str, Any]]:
    """Rules from a JSON file: a list of rule objects (or ``{"rules": [...]}``), validated."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict):
        data = data.get("rules", [])
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"fault rules file {path}: expected a JSON list of rule objects")
    for rule in data:
        FaultRule(**rule)
    return data


class Faults:
    """The rule set of one emulator; thread-safe, deterministic for a given seed and request order."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []
        #: Extra seconds added to every request.
        self.latency = 0.0

    def add(self, action: Action = "status", **fields: Any) -> FaultRule:
        """Add a rule (see :class:`FaultRule` for the fields) and return it (its ``fired`` count is live)."""
        rule = FaultRule(action=action, **fields)
        with self._lock:
            self.rules.append(rule)
        return rule

    def load(self, rules: Iterable[Mapping[str, Any]]) -> list[FaultRule]:
        """Add rules given as dicts (the JSON rules-file format)."""
        return [self.add(**dict(rule)) for rule in rules]

    def load_file(self, path: str | Path) -> list[FaultRule]:
        """Add the rules of a JSON rules file."""
        return self.load(read_rules(path))

    def clear(self, latency: float = 0.0) -> None:
        """Remove every rule and restart the RNG from the seed."""
        with self._lock:
            self.rules.clear()
            self._rng = random.Random(self._seed)
            self.latency = latency

    def select(self, method: str, path: str, kind: str) -> list[FaultRule]:
        """Rules firing for this request: every firing ``latency`` rule, then at most one other rule."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path, kind):
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.action != "latency" and any(r.action != "latency" for r in fired):
                    continue
                rule.matched += 1
                if rule.nth is not None:
                    fire = rule.matched == rule.nth
                elif rule.every is not None:
                    fire = rule.matched % rule.every == 0
                elif rule.probability is not None:
                    fire = self._rng.random() < rule.probability
                else:
                    fire = True
                if fire:
                    rule.fired += 1
                    fired.append(rule)
        return fired
