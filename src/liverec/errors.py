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


class CatalogError(LiverecError):
    """The catalog could not do what was asked."""


class NotFoundError(CatalogError):
    """The thing asked for does not exist."""


class ConflictError(CatalogError):
    """The thing being created exists already (a unique name is taken)."""


class SchemaError(CatalogError):
    """The database schema is missing or behind the code's migrations."""


class StorageError(LiverecError):
    """A blob store call failed."""


class InvalidKeyError(StorageError):
    """A storage key is unsafe (absolute, `..`, control characters, empty parts)."""


class StorageTimeoutError(StorageError):
    """A storage call timed out (the API answers 504)."""
