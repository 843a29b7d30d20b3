"""JSON for the quick commands (`rtc stop`), without importing the `json` package.

`json` imports `re`, which imports `enum`: 18 ms of the 65 that `rtc stop` took on a
2-core machine, more than the rest of its own work. CPython's `_json` accelerator (what
`json` itself runs on) does the parsing and the string escaping; this module only wires
it up, and hands over to `json` where `_json` is missing.
"""

from __future__ import annotations

import math

try:
    import _json
except ImportError:  # another Python: the standard module, at its usual cost
    _json = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class _ScannerOptions:
    """What `_json.make_scanner` reads from a `json.JSONDecoder`."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)


_scan = _json.make_scanner(_ScannerOptions()) if _json is not None else None
_SPACE = " \t\n\r"


def loads(text: str | bytes) -> Any:
    """Parse one JSON document; `ValueError` when it is not one."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if _scan is None:
        import json

        return json.loads(text)
    text = text.strip(_SPACE)
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return value


def dumps(value: Any) -> str:
    """Encode plain data (dict with str keys, list, str, int, float, bool, None) as JSON."""
    if _json is None:
        import json

        return json.dumps(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not JSON")
        return float.__repr__(value)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("JSON object keys must be strings")
        return "{" + ", ".join(f"{dumps(k)}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
