"""What a request proves about its sender, handed by the HTTP layer to the tracker core.

RFC 7846 section 6 leaves authentication to the deployment and recommends OAuth 2.0 bearer
tokens from an enrollment service that hands out PeerIDs.  ppsp's tokens are JWTs (RFC 7519)
signed with Ed25519 (PROFILE.md, "Trust"); the HTTP layer checks the signature and the expiry
and hands the core a :class:`Credentials`; the core decides what the request may do with them
(its PeerID must be the subject; it may join only the swarms listed, when a list is given).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OPERATOR_ROLE", "Credentials"]

OPERATOR_ROLE = "operator"
"""The ``role`` claim of an operator's token: it opens the dashboard and its API."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A verified bearer token's claims."""

    subject: str
    """The PeerID the token was issued for (claim ``sub``)."""

    swarms: frozenset[str] | None = None
    """The only swarms the peer may join (claim ``swarms``); None: any swarm."""

    expires: float | None = None
    """When the token stops being valid, Unix time (claim ``exp``)."""

    role: str | None = None
    """What else the token opens (claim ``role``): :data:`OPERATOR_ROLE`, the dashboard."""

    @property
    def operator(self) -> bool:
        """Whether the token is an operator's (it opens the dashboard and its API)."""
        return self.role == OPERATOR_ROLE
