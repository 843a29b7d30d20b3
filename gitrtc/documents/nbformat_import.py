"""`nbformat`, imported without jsonschema's optional IRI checker (one seam, measured).

nbformat validates with jsonschema, whose format checkers import `rfc3987_syntax` when it
is installed (nbdime's jupyter_server brings it in); that module builds a Lark grammar at
import: 2.3 s of every `rtc start` (W6 in benchmarks/README.md) and of the first disk edit
of a notebook. Notebook schemas use no IRI formats. So while nbformat (and jsonschema with
it) is first imported, `rfc3987_syntax` is marked absent in `sys.modules`; the mark is
removed right after, so other code in the process can still import it. gitrtc imports
nbformat only through here (nbdime after it); `tests/test_fast_start.py` checks both.
"""

from __future__ import annotations

import sys

_BLOCKED = "rfc3987_syntax"
_marked = _BLOCKED not in sys.modules
if _marked:
    sys.modules[_BLOCKED] = None  # type: ignore[assignment]  # the import system's "absent"
try:
    import nbformat
finally:
    if _marked and sys.modules.get(_BLOCKED, False) is None:
        del sys.modules[_BLOCKED]

__all__ = ["nbformat"]
