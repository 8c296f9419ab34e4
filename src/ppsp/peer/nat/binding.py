"""A STUN Binding client transaction over UDP (RFC 8489 sections 6.2.1 and 7), sans-I/O.

The I/O layer sends :meth:`BindingTransaction.request`, hands every datagram that arrives to
:meth:`BindingTransaction.receive` and calls :meth:`BindingTransaction.timer` at
:meth:`BindingTransaction.next_deadline`; the transaction answers with the datagram to send
again (a retransmission) and ends with the reflexive address or an error.  Timers and the
dropping of strangers' datagrams are :class:`~.transaction.ClientTransaction`'s.
"""

from __future__ import annotations

from ppsp.codecs.stun import encode_message
from ppsp.errors import StunError
from ppsp.peer.nat.transaction import (
    QUICK,
    RFC_DEFAULT,
    UNDERSTOOD,
    ClientTransaction,
    Retransmission,
)
from ppsp.wire.stun import StunClass, StunMessage, StunMethod

__all__ = ["QUICK", "RFC_DEFAULT", "UNDERSTOOD", "BindingTransaction", "Retransmission"]


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
        request = encode_message(
            StunMessage(
                cls=StunClass.REQUEST,
                method=StunMethod.BINDING,
                transaction_id=transaction_id,
                software=software,
                fingerprint=True,
            )
        )
        self._transaction = ClientTransaction(request, transaction_id, now, retransmission)
        self.transaction_id = transaction_id
        self.retransmission = retransmission
        self.mapped: tuple[str, int] | None = None
        self.error: StunError | None = None

    @property
    def done(self) -> bool:
        """Whether the transaction ended (answered, refused or timed out)."""
        return self._transaction.done

    @property
    def sent(self) -> int:
        """Requests sent so far."""
        return self._transaction.sent

    @property
    def dropped(self) -> int:
        """Datagrams dropped: not STUN, malformed, or not an answer to this transaction."""
        return self._transaction.dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._transaction.dropped = value

    def request(self) -> bytes:
        """The Binding request's bytes (sent at creation and at each retransmission)."""
        return self._transaction.request

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must be called (None once done)."""
        return self._transaction.next_deadline()

    def timer(self, now: float) -> bytes | None:
        """The deadline passed: the request to send again, or None (not due yet, or the
        transaction just gave up: :attr:`error` is then a :class:`~ppsp.errors.StunTimeout`)."""
        again = self._transaction.timer(now)
        if self._transaction.timed_out and self.error is None:
            self.error = self._transaction.timeout_error()
        return again

    def receive(self, data: bytes) -> bool:
        """A datagram arrived on the socket; True when it ended the transaction."""
        if not self._transaction.receive(data):
            return False
        message = self._transaction.answer
        assert message is not None
        if message.cls is StunClass.ERROR:
            code, reason = message.error if message.error is not None else (400, "no ERROR-CODE")
            self.error = StunError(f"the STUN server answered {code} {reason}".rstrip())
            self.error.code = code
        elif message.mapped is None:
            self.error = StunError("the STUN server's answer has no mapped address")
        else:
            self.mapped = message.mapped
        return True
