"""rtmp."""
