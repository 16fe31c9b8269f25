"""Plain values the edge passes around, free of any wire format."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Recipient(enum.Enum):
    """Where an address stands, as the router's ``CheckRecipient`` says."""

    LOCAL_USER = "local user"          # a user of a hosted domain
    UNKNOWN_USER = "unknown user"      # hosted domain, no such user
    NOT_HOSTED = "not hosted"          # a domain we do not host


@dataclass(frozen=True)
class Account:
    """An authenticated user (the router's ``Account``)."""

    user_id: str
    email: str
