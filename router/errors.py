"""Typed errors of the router; service.py maps each to one gRPC status, once (and
tidings_runtime.addresses.AddressError, a malformed address, to INVALID_ARGUMENT)."""
from __future__ import annotations


class RouterError(Exception):
    """Base of every error the router raises on purpose."""


class Unavailable(RouterError):
    """Too few live replicas to reach the consistency level: nothing was acknowledged."""


class QuorumTimeout(Unavailable):
    """Replicas were contacted but too few answered before the deadline."""


class QuorumFailure(Unavailable):
    """Replicas were contacted and enough of them failed that the level cannot be met."""


class NotFound(RouterError):
    pass


class InvalidArgument(RouterError):
    pass


class NotHosted(InvalidArgument):
    """An address outside every domain we host (a permanent refusal where no relaying is allowed)."""


class Unauthenticated(RouterError):
    pass


class AlreadyExists(RouterError):
    pass


class FailedPrecondition(RouterError):
    pass
