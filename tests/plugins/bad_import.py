"""A plugin whose import fails."""

raise ImportError("needs libfoo, which is not installed")
