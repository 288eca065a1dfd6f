"""Which cases a ``--filter`` (and ``--workload``, ``--strategy`` …) selects.

A selection is a list of patterns, all of which a case must match (AND). One pattern is
either

- ``key=value``: a field of the case (``workload=rr``, ``size=64``, ``nodelay=on``,
  ``sndbuf=auto``, ``strategy=sendall,makefile``: commas are alternatives), or
- an id pattern: a glob (``*``, ``?``, ``[``) or a substring of the case id (``nd1``,
  ``-s64-``), with commas again as alternatives.

Fields are read from the id itself (its grammar is in :meth:`flushbench.case.Case.id`), so
stored runs, whose tables hold only ids for this purpose, select the same way as suites.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

from ..case import parse_size
from ..errors import UsageError, did_you_mean

TRANSPORTS = ("loopback", "unix", "emulated", "remote")
# key -> (field read from the id, kind of value); aliases point at the same field
KEYS: dict[str, tuple[str, str]] = {
    "workload": ("workload", "word"), "strategy": ("strategy", "word"),
    "size": ("msg_size", "size"), "msg_size": ("msg_size", "size"),
    "parts": ("parts", "int"), "nodelay": ("nodelay", "bool"),
    "sndbuf": ("sndbuf", "size_or_auto"), "rcvbuf": ("rcvbuf", "size_or_auto"),
    "notsent_lowat": ("notsent_lowat", "size_or_auto"), "reply": ("reply", "size"),
    "batch": ("batch", "int"), "buffer": ("buffer", "size"),
    "transport": ("transport", "word"), "tls": ("tls", "tls"),
    "conns": ("conns", "int"), "driver": ("driver", "word"), "twin": ("twin", "bool"),
}
_PREFIXED = (("sb", "sndbuf", "size_or_auto"), ("rb", "rcvbuf", "size"),
             ("lw", "notsent_lowat", "size"), ("nd", "nodelay", "bool"), ("s", "msg_size", "size"),
             ("p", "parts", "int"), ("r", "reply", "size"), ("k", "batch", "int"),
             ("b", "buffer", "size"))
TRUE_WORDS, FALSE_WORDS = ("1", "on", "true", "yes"), ("0", "off", "false", "no")


def id_fields(case_id: str) -> dict[str, Any]:
    """A case id's fields as :class:`~flushbench.case.Case` names them (unset options as 0,
    auto, off); tokens it cannot read are ignored."""
    tokens = case_id.split("-")
    out: dict[str, Any] = {"workload": tokens[0], "strategy": tokens[1] if len(tokens) > 1
                           else "", "msg_size": 0, "parts": 2, "nodelay": False, "sndbuf": 0,
                           "rcvbuf": 0, "notsent_lowat": 0, "reply": 0, "batch": 1,
                           "buffer": 0, "transport": "", "tls": "", "conns": 1, "driver": "",
                           "twin": False}
    rest = iter(tokens[2:])
    for token in rest:
        if token in TRANSPORTS:
            out["transport"] = token
        elif token == "twin":
            out["twin"] = True
        elif re.fullmatch(r"tls1[23]", token):
            out["tls"] = f"1.{token[-1]}"
        elif re.fullmatch(r"c\d+", token):
            out["conns"], out["driver"] = int(token[1:]), next(rest, "")
        else:
            for prefix, name, kind in _PREFIXED:
                if token.startswith(prefix):
                    value = _value(name, kind, token[len(prefix):])
                    if value is not None:
                        out[name] = value
                        break
    return out


def _value(name: str, kind: str, text: str) -> Any:
    """One token's value, or None where it is not of that kind."""
    try:
        if kind == "bool":
            return {"1": True, "0": False}.get(text)
        if kind == "int":
            return int(text) if text.isdigit() else None
        if kind == "size_or_auto" and text == "auto":
            return 0
        return parse_size(text)
    except ValueError:
        return None


def parse_wanted(key: str, text: str) -> tuple[str, set[Any]]:
    """``key=text`` as (field, the values it accepts); UsageError for an unknown key or a
    value of the wrong kind."""
    if key not in KEYS:
        raise UsageError(f"unknown filter key {key!r}{did_you_mean(key, KEYS)}; keys: "
                         f"{', '.join(k for k in KEYS if k != 'msg_size')}")
    name, kind = KEYS[key]
    wanted: set[Any] = set()
    for alt in (a.strip() for a in text.split(",")):
        low = alt.lower()
        if kind == "word":
            wanted.add(alt)
        elif kind == "bool" and low in TRUE_WORDS + FALSE_WORDS:
            wanted.add(low in TRUE_WORDS)
        elif kind == "tls" and low in TRUE_WORDS + FALSE_WORDS + ("1.2", "1.3", "12", "13"):
            wanted.update({"1.2", "1.3"} if low in TRUE_WORDS else {""} if low in FALSE_WORDS
                          else {"1." + low[-1]})
        elif kind == "int" and alt.isdigit():
            wanted.add(int(alt))
        elif kind in ("size", "size_or_auto") and (low in ("auto", "0") or _size(alt)):
            wanted.add(0 if low == "auto" else parse_size(alt))
        else:
            expect = {"bool": "on or off", "tls": "on, off, 1.2 or 1.3", "int": "a whole number",
                      "size": "a byte count like 64, 16K or 1M",
                      "size_or_auto": "auto or a byte count like 64K"}[kind]
            raise UsageError(f"filter {key}={text}: {alt!r} is not {expect}")
    return name, wanted


def _size(text: str) -> bool:
    try:
        parse_size(text)
    except ValueError:
        return False
    return True


def check(patterns: Sequence[str]) -> None:
    """Raise UsageError for a key=value pattern that cannot match anything."""
    for pattern in patterns:
        if _is_field(pattern):
            key, _, value = pattern.partition("=")
            parse_wanted(key.strip(), value)


def _is_field(pattern: str) -> bool:
    key = pattern.partition("=")[0].strip()
    return "=" in pattern and bool(re.fullmatch(r"[a-z_]+", key))


def matches(case_id: str, patterns: Sequence[str]) -> bool:
    """True if ``case_id`` matches every pattern (see the module's docstring); no patterns:
    every case."""
    fields: dict[str, Any] | None = None
    for pattern in patterns:
        if not pattern:
            continue
        if _is_field(pattern):
            key, _, value = pattern.partition("=")
            name, wanted = parse_wanted(key.strip(), value)
            fields = fields if fields is not None else id_fields(case_id)
            if fields[name] not in wanted:
                return False
        elif not any((fnmatch.fnmatchcase(case_id, alt) if any(c in alt for c in "*?[")
                      else alt in case_id) for alt in pattern.split(",") if alt):
            return False
    return True
