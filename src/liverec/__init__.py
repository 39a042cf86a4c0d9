"""liverec: a self-hosted live-stream recorder."""

__version__ = "0.1.0"
