"""gitrtc: share files of a git checkout live; end the session as one ordinary commit."""

import sys

__version__ = "0.1.0"

# nbformat validates with jsonschema, which imports the optional `rfc3987_syntax` format
# checker when it is installed (nbdime's jupyter_server brings it in); building its
# grammar takes over 2 s at every start. Notebook schemas use no IRI formats, so gitrtc
# runs without it: `rtc start` (and a restart after a crash) serves in under a second.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
