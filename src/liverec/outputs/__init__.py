"""Recording outputs: recorder-event consumers that make files of what the recorder cut.

Owns: MP4 record files (mp4.py: slicing, spooling, publishing, recovery after a crash; the
TS reading, remuxing and fragmented-MP4 boxes under it: tsread.py, samples.py, fmp4.py,
spool.py, publish.py). Periodic snapshots (snapshots.py) live here too.

May import: recorder events (recorder.events, never the recorder's internals), catalog
(through narrow Protocols of what each output needs), storage, layout, media and errors.
Never api, rtmp or postprocess; service.py wires the outputs to the recorders."""

from liverec.outputs.mp4 import Mp4Catalog, Mp4SliceStored, Mp4Writer
from liverec.outputs.publish import Mp4Store

__all__ = ["Mp4Catalog", "Mp4SliceStored", "Mp4Store", "Mp4Writer"]
