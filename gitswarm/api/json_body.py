"""JSON request bodies, bounded in nesting before they are parsed. Every JSON body the
HTTP side accepts (webhook payloads, the API's sync options) goes through ``loads``.

Python's json module recurses once per nesting level: a body of 10,000 ``[`` raises
RecursionError (a 500, a traceback thousands of lines long, seconds of CPU). ``loads``
first scans the brackets outside strings, with regular expressions (no Python loop per
byte), and refuses a body nested deeper than ``MAX_DEPTH`` as a ``UsageError`` (400)
without parsing it. No payload gitswarm reads nests more than a handful of levels.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from gitswarm.errors import UsageError

MAX_DEPTH = 64

# A JSON string (with its escapes), or one bracket. Strings are matched whole so that
# brackets inside them do not count.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (brackets in strings aside)."""
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _where(body: bytes, limit: int) -> str:
    """Line and column of the first bracket that goes deeper than ``limit``."""
    level = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            level += 1
            if level > limit:
                at = match.start()
                line = body.count(b"\n", 0, at) + 1
                column = at - (body.rfind(b"\n", 0, at) + 1) + 1
                return f"line {line}, column {column}"
        elif token in (b"]", b"}"):
            level -= 1
    return "the end"  # not reached when depth() said so


def loads(body: bytes, what: str = "the request body", max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(body)``, or a ``UsageError`` saying what is wrong and where: not JSON,
    or nested deeper than ``max_depth``."""
    if depth(body) > max_depth:
        raise UsageError(
            f"{what} nests JSON arrays/objects deeper than {max_depth} levels "
            f"(at {_where(body, max_depth)}); send a flatter document"
        )
    try:
        return json.loads(body)
    except RecursionError:  # not reachable below MAX_DEPTH; kept as a last guard
        raise UsageError(f"{what} nests JSON too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} is not JSON: {exc}") from None
