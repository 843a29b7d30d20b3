"""The `rtc` command line: one module per verb; each parses, then calls one function."""
