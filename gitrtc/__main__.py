"""`python -m gitrtc` runs the `rtc` command line."""

from .cli.main import main

main()
