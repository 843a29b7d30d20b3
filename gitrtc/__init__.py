"""gitrtc: share files of a git checkout live; end the session as one ordinary commit."""

__version__ = "0.1.0"
