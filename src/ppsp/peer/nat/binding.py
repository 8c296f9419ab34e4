"""A STUN Binding client transaction over UDP (RFC 8489 sections 6.2.1 and 7), sans-I/O.

The I/O layer sends :meth:`BindingTransaction.request`, hands every datagram that arrives to
:meth:`BindingTransaction.receive` and calls :meth:`BindingTransaction.timer` at
:meth:`BindingTransaction.next_deadline`; the transaction answers with the datagram to send
again (a retransmission) and ends with the reflexive address or an error.

Retransmissions follow section 6.2.1: the first after ``rto`` seconds, each later one after
twice the wait before it, ``rc`` requests in all; after the last, ``rm`` times ``rto`` more
before giving up (the RFC's defaults, 0.5 s, 7 and 16, give up after 39.5 s; a peer starting
up asks for less: :data:`QUICK`).  Datagrams that are not a well-formed STUN answer to this
transaction are dropped and counted (anyone can send to a UDP port); an answer whose
FINGERPRINT is wrong is not well-formed.
"""

from __future__ import annotations

from typing import NamedTuple

from ppsp.codecs.stun import decode_message, encode_message, is_stun
from ppsp.errors import StunError, StunFormatError, StunTimeout
from ppsp.wire.stun import TRANSACTION_ID_SIZE, Attr, StunClass, StunMessage, StunMethod

__all__ = ["QUICK", "RFC_DEFAULT", "UNDERSTOOD", "BindingTransaction", "Retransmission"]


UNDERSTOOD = frozenset({Attr.MESSAGE_INTEGRITY, Attr.USERNAME, Attr.UNKNOWN_ATTRIBUTES})
"""Comprehension-required attributes (below 0x8000) a client understands beside those the
codec reads: MESSAGE-INTEGRITY is checked by whoever holds a key, the others are harmless."""


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


class BindingTransaction:
    """One Binding request and its answer.

    ``transaction_id`` is 12 random bytes the I/O layer draws (the core draws nothing);
    ``now`` is when the first request is sent.  Once :attr:`done`, :attr:`mapped` is the
    reflexive ``(ip, port)`` or :attr:`error` says why there is none.
    """

    def __init__(
        self,
        transaction_id: bytes,
        now: float,
        *,
        retransmission: Retransmission = RFC_DEFAULT,
        software: str | None = None,
    ) -> None:
        if len(transaction_id) != TRANSACTION_ID_SIZE:
            raise ValueError("a STUN transaction ID has 12 bytes")
        if retransmission.rc < 1 or retransmission.rto <= 0:
            raise ValueError("a STUN transaction sends at least one request after a positive wait")
        self.transaction_id = transaction_id
        self.retransmission = retransmission
        self.mapped: tuple[str, int] | None = None
        self.error: StunError | None = None
        self.sent = 1
        """Requests sent so far (the first is sent at creation)."""
        self.dropped = 0
        """Datagrams dropped: not STUN, malformed, or not an answer to this transaction."""
        self._request = encode_message(
            StunMessage(
                cls=StunClass.REQUEST,
                method=StunMethod.BINDING,
                transaction_id=transaction_id,
                software=software,
                fingerprint=True,
            )
        )
        self._wait = retransmission.rto
        self._deadline: float | None = now + self._wait

    @property
    def done(self) -> bool:
        """Whether the transaction ended (answered, refused or timed out)."""
        return self._deadline is None

    def request(self) -> bytes:
        """The Binding request's bytes (sent at creation and at each retransmission)."""
        return self._request

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must be called (None once done)."""
        return self._deadline

    def timer(self, now: float) -> bytes | None:
        """The deadline passed: the request to send again, or None (not due yet, or the
        transaction just gave up: :attr:`error` is then a :class:`~ppsp.errors.StunTimeout`)."""
        if self._deadline is None or now < self._deadline:
            return None
        params = self.retransmission
        if self.sent < params.rc:
            self.sent += 1
            self._wait *= 2
            # After the last request the wait is rm * rto, not a doubling (section 6.2.1).
            last = self.sent == params.rc
            self._deadline = now + (params.rm * params.rto if last else self._wait)
            return self._request
        self._deadline = None
        self.error = StunTimeout(f"no STUN answer after {self.sent} requests")
        return None

    def receive(self, data: bytes) -> bool:
        """A datagram arrived on the socket; True when it ended the transaction."""
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
        if message.cls is StunClass.ERROR:
            code, reason = message.error if message.error is not None else (400, "no ERROR-CODE")
            self.error = StunError(f"the STUN server answered {code} {reason}".rstrip())
            self.error.code = code
        elif message.mapped is None:
            self.error = StunError("the STUN server's answer has no mapped address")
        else:
            self.mapped = message.mapped
        return True
