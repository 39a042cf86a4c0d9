"""liverec: a self-hosted live-stream recorder.

Layers, imports going down only:

    cli -> service -> {admission, bootstrap}
        -> {api, rtmp, recorder, postprocess} -> {catalog, storage} -> layout -> media
        -> {config, errors}

`service.py` is the composition root; each package's `__init__` says what it owns and
what it may import."""

__version__ = "0.1.0"
