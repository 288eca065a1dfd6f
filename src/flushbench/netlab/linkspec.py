"""Link specs for the `emulated` transport: ``rate=100mbit,delay=10ms,jitter=1ms,loss=0.1%``.

``delay`` and ``jitter`` are ONE-WAY and apply to each direction (delay=10ms gives a 20 ms RTT);
``rate`` and ``loss`` also apply per direction. Named profiles live in ``profiles.toml``; a
profile name may be followed by overrides (``wan-20ms,loss=1%``). ``str(spec)`` is the canonical
text and parses back to an equal spec. Bad text raises a one-line :class:`UsageError` that names
the field and the expected form.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PROFILES_FILE = Path(__file__).with_name("profiles.toml")
_RATE = {"gbit": 10**9, "mbit": 10**6, "kbit": 10**3, "bit": 1}
_TIME = {"s": 1_000_000, "ms": 1000, "us": 1}
_FORMS = {"rate": "a rate like 100mbit (units bit, kbit, mbit, gbit; 1kbit..100gbit)",
          "delay": "a one-way time like 10ms (units us, ms, s; at most 10s)",
          "jitter": "a time like 1ms (units us, ms, s; at most 10s)",
          "loss": "a percentage below 100 like 0.1%",
          "mtu": "a size in bytes like 1500 (68..65535)"}
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([a-z%]*)")


def _amount(field: str, text: str, units: dict[str, int]) -> int:
    m = _NUMBER.fullmatch(text)
    if not m or m.group(2) not in units:
        raise UsageError(f"bad link field {field}={text!r}: expected {_FORMS[field]}")
    return round(float(m.group(1)) * units[m.group(2)])


def _scaled(value: int, units: dict[str, int]) -> str:
    unit, scale = next((u, s) for u, s in units.items() if value % s == 0)
    return f"{value // scale}{unit}"


def profiles() -> dict[str, dict[str, str]]:
    """The named link profiles of profiles.toml: name -> {field: text, 'description': ...}."""
    with PROFILES_FILE.open("rb") as f:
        return {k: {f: str(v) for f, v in t.items()} for k, t in tomllib.load(f).items()}


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One emulated link; every field applies to each direction. 0 means "not emulated"."""

    rate: int = 0  # bit/s
    delay: int = 0  # one-way, microseconds
    jitter: int = 0  # microseconds, uniform +/-
    loss: float = 0.0  # percent of packets
    mtu: int = 0  # bytes; 0 = the backend's default

    def __post_init__(self) -> None:
        for field, ok in (("rate", self.rate == 0 or 1000 <= self.rate <= 100 * 10**9),
                          ("delay", 0 <= self.delay <= 10_000_000),
                          ("jitter", 0 <= self.jitter <= 10_000_000),
                          ("loss", 0.0 <= self.loss < 100.0),
                          ("mtu", self.mtu == 0 or 68 <= self.mtu <= 65535)):
            if not ok:
                raise UsageError(f"bad link field {field}={getattr(self, field)!r}: "
                                 f"expected {_FORMS[field]}")

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        """'rate=100mbit,delay=10ms,jitter=1ms,loss=0.1%', a profile name, a profile name
        followed by overrides ('wan-20ms,loss=1%'), or 'none'."""
        fields: dict[str, Any] = {}
        items = [i.strip() for i in text.strip().lower().split(",") if i.strip()]
        if items in ([], ["none"]):
            return cls()
        known = profiles()
        if "=" not in items[0]:
            if items[0] not in known:
                raise UsageError(f"unknown link profile {items[0]!r}"
                                 f"{did_you_mean(items[0], known)}: expected one of "
                                 f"{', '.join(known)} or fields like rate=100mbit,delay=10ms")
            fields = cls.parse(",".join(f"{k}={v}" for k, v in known[items.pop(0)].items()
                                        if k != "description")).as_dict()
        for item in items:
            if "=" not in item:
                raise UsageError(f"bad link spec item {item!r}: expected a field like "
                                 "delay=10ms (a profile name may only come first)")
            key, _, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if key in ("delay", "jitter"):
                fields[key] = _amount(key, value, _TIME)
            elif key == "rate":
                fields[key] = _amount(key, value, _RATE)
            elif key == "loss":
                fields[key] = float(value[:-1]) if re.fullmatch(
                    r"(\d+(\.\d*)?|\.\d+)%", value) else _amount("loss", value, {})
            elif key == "mtu" and value.isdigit():
                fields[key] = int(value)
            elif key == "mtu":
                raise UsageError(f"bad link field mtu={value!r}: expected {_FORMS['mtu']}")
            else:
                raise UsageError(f"bad link spec item {item!r}: expected rate=, delay=, jitter=, "
                                 f"loss=, mtu= or a profile ({', '.join(known)})")
        return cls(**fields)

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}

    def __str__(self) -> str:
        parts = [f"rate={_scaled(self.rate, _RATE)}" if self.rate else "",
                 f"delay={_scaled(self.delay, _TIME)}" if self.delay else "",
                 f"jitter={_scaled(self.jitter, _TIME)}" if self.jitter else "",
                 f"loss={self.loss:.15g}%" if self.loss else "",
                 f"mtu={self.mtu}" if self.mtu else ""]
        return ",".join(p for p in parts if p) or "none"

    @property
    def needs_delay_line(self) -> bool:
        """True when veth + tbf is not enough (netem or the TUN delay line is needed)."""
        return bool(self.delay or self.jitter or self.loss)

    @property
    def rtt_s(self) -> float:
        """The added round-trip time in seconds (2 x one-way delay)."""
        return 2 * self.delay / 1e6
