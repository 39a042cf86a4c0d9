"""Time-shift playlists: HLS media playlists built on the fly from the catalog's segment
index, never stored (playlist.py); closed recordings' entries rendered once and kept
(cache.py). The HTTP routes are api/play.py."""

from liverec.playback.playlist import MAX_SPAN, TimeShift, event_target, render_time_shift

__all__ = ["MAX_SPAN", "TimeShift", "event_target", "render_time_shift"]
