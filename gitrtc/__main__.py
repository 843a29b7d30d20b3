"""`python -m gitrtc` runs the `rtc` command line."""

from .cli.entry import main

main()
