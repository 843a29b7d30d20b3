"""The browser view (`view.js`), served by the session under `/plugins/csv/`."""

from pathlib import Path

STATIC = Path(__file__).parent
