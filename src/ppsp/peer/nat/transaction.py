"""A STUN client transaction over UDP (RFC 8489 section 6.2.1), sans-I/O: one request, its
retransmissions, and the answer that ends it.

Retransmissions: the first after ``rto`` seconds, each later one after twice the wait before
it, ``rc`` requests in all; after the last, ``rm`` times ``rto`` more before giving up (the
RFC's defaults, 0.5 s, 7 and 16, give up after 39.5 s; a peer starting up asks for less:
:data:`QUICK`).  Datagrams that are not a well-formed STUN answer to this transaction are
dropped and counted (anyone can send to a UDP port); an answer whose FINGERPRINT is wrong is
not well-formed, and a success answer with an unknown comprehension-required attribute is
discarded (section 6.3.3).  The Binding (:mod:`.binding`) and TURN (:mod:`.turn`) clients
are built on it.
"""

from __future__ import annotations

from typing import NamedTuple

from ppsp.codecs.stun import decode_message, is_stun
from ppsp.errors import StunFormatError, StunTimeout
from ppsp.wire.stun import TRANSACTION_ID_SIZE, Attr, StunClass, StunMessage

__all__ = ["QUICK", "RFC_DEFAULT", "UNDERSTOOD", "ClientTransaction", "Retransmission"]


class Retransmission(NamedTuple):
    """The retransmission parameters of a STUN client transaction (RFC 8489 section 6.2.1)."""

    rto: float = 0.5
    """Seconds before the first retransmission (doubled after each)."""
    rc: int = 7
    """Requests sent in all."""
    rm: int = 16
    """After the last request, ``rm * rto`` seconds more before giving up."""


RFC_DEFAULT = Retransmission()
"""The RFC's recommended values: the transaction gives up after 39.5 s."""
QUICK = Retransmission(rto=0.25, rc=4, rm=8)
"""What a peer uses at start-up: requests at 0, 0.25, 0.75 and 1.75 s, given up at 3.75 s."""

UNDERSTOOD = frozenset(
    {
        Attr.MESSAGE_INTEGRITY,
        Attr.USERNAME,
        Attr.UNKNOWN_ATTRIBUTES,
        Attr.LIFETIME,
        Attr.XOR_PEER_ADDRESS,
        Attr.DATA,
        Attr.REALM,
        Attr.NONCE,
        Attr.XOR_RELAYED_ADDRESS,
        Attr.CHANNEL_NUMBER,
        Attr.REQUESTED_TRANSPORT,
    }
)
"""Comprehension-required attributes (below 0x8000) a client understands beside those the
codec reads as fields (MESSAGE-INTEGRITY is checked by whoever holds the key)."""


class ClientTransaction:
    """One request (already encoded, ``transaction_id`` inside it) sent at ``now``.

    Once :attr:`done`, :attr:`answer` is the success or error answer, or :attr:`timed_out`.
    """

    def __init__(
        self,
        request: bytes,
        transaction_id: bytes,
        now: float,
        retransmission: Retransmission = RFC_DEFAULT,
    ) -> None:
        if len(transaction_id) != TRANSACTION_ID_SIZE:
            raise ValueError("a STUN transaction ID has 12 bytes")
        if retransmission.rc < 1 or retransmission.rto <= 0:
            raise ValueError("a STUN transaction sends at least one request after a positive wait")
        self.request = request
        self.transaction_id = transaction_id
        self.retransmission = retransmission
        self.answer: StunMessage | None = None
        self.answer_bytes = b""
        """The answer as received (for a MESSAGE-INTEGRITY check)."""
        self.timed_out = False
        self.sent = 1
        """Requests sent so far (the first is sent at creation)."""
        self.dropped = 0
        """Datagrams dropped: not STUN, malformed, or not an answer to this transaction."""
        self._wait = retransmission.rto
        self._deadline: float | None = now + self._wait

    @property
    def done(self) -> bool:
        """Whether the transaction ended (answered or timed out)."""
        return self._deadline is None

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must be called (None once done)."""
        return self._deadline

    def timer(self, now: float) -> bytes | None:
        """The deadline passed: the request to send again, or None (not due yet, or the
        transaction just gave up: :attr:`timed_out`)."""
        if self._deadline is None or now < self._deadline:
            return None
        params = self.retransmission
        if self.sent < params.rc:
            self.sent += 1
            self._wait *= 2
            # After the last request the wait is rm * rto, not a doubling (section 6.2.1).
            last = self.sent == params.rc
            self._deadline = now + (params.rm * params.rto if last else self._wait)
            return self.request
        self._deadline = None
        self.timed_out = True
        return None

    def timeout_error(self) -> StunTimeout:
        """The error of a transaction that timed out."""
        return StunTimeout(f"no STUN answer after {self.sent} requests")

    def receive(self, data: bytes) -> bool:
        """A datagram arrived; True when it is this transaction's answer (which ends it)."""
        if self._deadline is None or not is_stun(data):
            self.dropped += 1
            return False
        try:
            message = decode_message(data)
        except StunFormatError:
            self.dropped += 1
            return False
        if message.transaction_id != self.transaction_id or message.cls not in (
            StunClass.SUCCESS,
            StunClass.ERROR,
        ):
            self.dropped += 1
            return False
        if message.cls is StunClass.SUCCESS and any(
            atype < 0x8000 and atype not in UNDERSTOOD for atype, _ in message.other
        ):
            # An unknown comprehension-required attribute: the answer is discarded (section
            # 6.3.3); a retransmission may still bring a good one.
            self.dropped += 1
            return False
        self._deadline = None
        self.answer = message
        self.answer_bytes = bytes(data)
        return True
