"""Media formats, pure and synchronous: bytes in, values out, no I/O, no clock.

Owns: AMF0 (amf0.py), FLV tags (flv.py), H.264 and AAC configuration (h264.py, aac.py),
MPEG-TS muxing and the few TS reads liverec needs (ts.py), the M3U8 model (m3u8.py), and
the one rule for names users give (names.py). May import: errors only."""

__all__ = ["aac", "amf0", "flv", "h264", "m3u8", "names", "ts"]
