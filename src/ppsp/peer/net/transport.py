"""The chunk transport interface: how a chunk moves from a remote peer into the store.

The download policy (:mod:`ppsp.peer.download.stored`) names a peer and a chunk; the session
loop hands the request to the :class:`ChunkTransport` negotiated with that peer
(TRANSPORT_NEGOTIATION: the first type of :data:`TRANSPORT_PREFERENCE` the peer offers,
:func:`choose_offer`).  A transport moves the bytes, reports them as they arrive and when they
are all there (:class:`TransferObserver`), verifies them and writes them to the store, and
stops at once when its task is cancelled.  HTTP (:mod:`ppsp.peer.net.http_transport`) is the
mandatory one; RFC 7574 (PPSPP over UDP, :mod:`ppsp.peer.net.ppspp_transport`) is the second,
offered by peers that serve it and used when the download's preference names it
(``ppsp get --transport``), without a change to the policy.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar, Protocol

from ppsp.errors import ChunkTransferError
from ppsp.peer.net.session import RemotePeer
from ppsp.wire.peer import HTTP, TransportOffer

PPSPP = "PPSPP"
"""The RFC 7574 transport's type in TRANSPORT_NEGOTIATION; its URI is
``ppspp://HOST:PORT/ROOTHASH?chunk=SIZE`` (:mod:`ppsp.peer.net.ppspp_transport`)."""

TRANSPORT_PREFERENCE: tuple[str, ...] = (HTTP,)
"""The chunk transports a download asks for by default, most preferred first (HTTP is
mandatory; PPSPP only when asked: ``ppsp get --transport``)."""

TRANSPORTS: tuple[str, ...] = (HTTP, PPSPP)
"""Every chunk transport this peer speaks."""

TRANSFER_ERRORS = (ChunkTransferError, OSError, TimeoutError)
"""What a failed transfer raises (a transport turns its own errors into these)."""


class ChunkNotWanted(Exception):
    """The chunk's bytes arrived but it was held meanwhile: the transport dropped them."""


class TransferObserver(Protocol):
    """Who follows one transfer: told of the bytes as they arrive and when they are all there."""

    def received(self, nbytes: int) -> None:
        """``nbytes`` bytes of the chunk have arrived so far (a sign of life, not a promise)."""

    def delivered(self, nbytes: int) -> bool:
        """Every byte arrived and verification begins; False: drop them (held meanwhile).

        A transport that verifies as it receives (and writes in the same step) need not call
        this: the end of :meth:`ChunkTransport.fetch` says the same.
        """


class ChunkTransport(abc.ABC):
    """Moves chunks of one swarm session from remote peers into the session's store."""

    kind: ClassVar[str]
    """The transport's type in TRANSPORT_NEGOTIATION (``HTTP``)."""

    @abc.abstractmethod
    async def fetch(self, remote: RemotePeer, index: int, observer: TransferObserver) -> int:
        """Fetch chunk ``index`` from ``remote``, verify it and write it to the store.

        Returns the chunk's length once it is written (the caller records it as held).
        Raises :class:`~ppsp.errors.IntegrityError` when the bytes fail verification,
        :class:`ChunkNotWanted` when ``observer`` declined them,
        :class:`~ppsp.errors.ChunkUnavailable` once the store is closed, and one of
        :data:`TRANSFER_ERRORS` when the transfer fails.  Cancelling the call stops the
        transfer.
        """

    def close(self) -> None:  # noqa: B027 - most transports hold nothing of their own
        """Release what the transport holds for its session."""


def choose_offer(
    offers: Sequence[TransportOffer], preference: Sequence[str] = TRANSPORT_PREFERENCE
) -> TransportOffer | None:
    """The offer of a TRANSPORT_NEGOTIATION answer to use: the first type of ``preference``
    offered with a URI (types compared case-insensitively); None when there is none."""
    for kind in preference:
        for offer in offers:
            if offer.type.upper() == kind.upper() and offer.uri is not None:
                return offer
    return None
