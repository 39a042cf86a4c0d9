"""The HTTP API: the FLS standard-recording routes (fls.py), the management routes
(admin.py), file serving and signed links (files.py, signing.py), authentication
(auth.py, access.py) and the one error mapping (errors.py).

Owns: the wire contract, its validation and its error bodies. May import: catalog,
storage, layout, media, config, errors. Post-processing reaches it only through the
ClipMaker and SnapshotMaker Protocols of context.py, which service.py fills; the API maps
liverec's own exceptions and never imports a database or S3 driver."""

from liverec.api.app import create_app, openapi_json
from liverec.api.context import ApiContext, ClipMaker, SnapshotMaker

__all__ = ["ApiContext", "ClipMaker", "SnapshotMaker", "create_app", "openapi_json"]
