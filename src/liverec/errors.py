"""The exception tree. Every error liverec raises on purpose is a LiverecError."""

from __future__ import annotations


class LiverecError(Exception):
    """Base of every error liverec raises deliberately."""


class ConfigError(LiverecError):
    """A setting is missing, malformed or inconsistent."""


class MediaError(LiverecError):
    """Media bytes could not be parsed (FLV, AMF0, H.264, AAC, M3U8)."""


class ProtocolError(LiverecError):
    """A peer broke the RTMP protocol; the one connection is closed."""


class RefusedError(LiverecError):
    """A publish was refused (auth, unknown entry point, stream busy, bad name, codec).

    `code` is the RTMP status code sent to the client, `description` the text."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class NotFoundError(LiverecError):
    """The thing asked for does not exist (a catalog row, a stored object, a recording)."""


class CatalogError(LiverecError):
    """The catalog could not do what was asked."""


class InvalidValueError(CatalogError):
    """A value given to the catalog is not valid (a name, a time, a size): the caller's."""


class ConflictError(CatalogError):
    """The thing being created exists already (a unique name is taken)."""


class LeaseLostError(CatalogError):
    """The recording is no longer this node's: another node closed it after this node's
    lease ran out. The catalog decides this; the recorder goes on in a new recording."""


class SchemaError(CatalogError):
    """The database schema is missing or behind the code's migrations."""


class CatalogUnavailableError(CatalogError):
    """The database failed or could not be reached: an outage, which may end."""


class CatalogTimeoutError(CatalogUnavailableError):
    """A database call timed out: connecting, waiting for a pooled connection, a
    statement timeout (the API answers 504)."""


class CatalogBusyError(CatalogTimeoutError):
    """SQLite's wait for the write lock ran out (another writer held it)."""


class StorageError(LiverecError):
    """A blob store call failed."""


class InvalidKeyError(StorageError):
    """A storage key is unsafe (absolute, `..`, control characters, empty parts)."""


class StorageTimeoutError(StorageError):
    """A storage call timed out (the API answers 504)."""
