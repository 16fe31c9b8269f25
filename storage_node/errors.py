"""Typed errors of the storage node; service.py maps each to one gRPC status."""
from __future__ import annotations


class StorageError(Exception):
    """Base of every error the storage engine raises on purpose."""


class NotFound(StorageError):
    pass


class InvalidArgument(StorageError):
    pass


class CorruptValue(StorageError):
    pass


class BlobMissing(StorageError):
    pass


class PeerUnavailable(StorageError):
    """Another storage node this node called (a range pull) failed or could not be reached."""
