"""The STUN Binding client transaction: retransmission timers, answers, hostile datagrams."""

from __future__ import annotations

import pytest

from ppsp.codecs.stun import decode_message, encode_message
from ppsp.errors import StunTimeout
from ppsp.peer.nat.binding import QUICK, BindingTransaction, Retransmission
from ppsp.wire.stun import StunClass, StunMessage, StunMethod

TID = bytes(range(12))
T0 = 1000.0


def answer(
    cls: StunClass = StunClass.SUCCESS,
    *,
    tid: bytes = TID,
    mapped: tuple[str, int] | None = None,
    error: tuple[int, str] | None = None,
    fingerprint: bool = False,
) -> bytes:
    return encode_message(
        StunMessage(
            cls, StunMethod.BINDING, tid, mapped=mapped, error=error, fingerprint=fingerprint
        )
    )


def test_the_request_is_a_fingerprinted_binding_request() -> None:
    request = decode_message(BindingTransaction(TID, T0, software="ppsp").request())
    assert request.cls is StunClass.REQUEST and request.transaction_id == TID
    assert request.fingerprint and request.software == "ppsp"


def test_retransmissions_double_then_wait_rm_times_rto_then_give_up() -> None:
    transaction = BindingTransaction(TID, T0, retransmission=QUICK)
    sent_at = []
    while not transaction.done:
        deadline = transaction.next_deadline()
        assert deadline is not None
        assert transaction.timer(deadline - 0.01) is None  # not yet
        if transaction.timer(deadline) is not None:
            sent_at.append(round(deadline - T0, 6))
    assert sent_at == [0.25, 0.75, 1.75]  # with the first at 0: four requests
    assert transaction.sent == 4
    assert isinstance(transaction.error, StunTimeout)
    assert "4 requests" in str(transaction.error)


def test_rfc_defaults_give_up_after_39_5_seconds() -> None:
    transaction = BindingTransaction(TID, 0.0, retransmission=Retransmission())
    last = 0.0
    while not transaction.done:
        deadline = transaction.next_deadline()
        assert deadline is not None
        transaction.timer(deadline)
        last = deadline
    assert last == pytest.approx(39.5) and transaction.sent == 7


def test_a_success_answer_gives_the_mapped_address() -> None:
    transaction = BindingTransaction(TID, T0)
    assert transaction.receive(answer(mapped=("203.0.113.7", 40000)))
    assert transaction.done and transaction.mapped == ("203.0.113.7", 40000)
    assert transaction.next_deadline() is None and transaction.timer(T0 + 100) is None


def test_an_error_answer_ends_with_its_code() -> None:
    transaction = BindingTransaction(TID, T0)
    assert transaction.receive(answer(StunClass.ERROR, error=(420, "Unknown Attribute")))
    assert transaction.mapped is None and transaction.error is not None
    assert transaction.error.code == 420 and "420 Unknown Attribute" in str(transaction.error)


def test_strangers_datagrams_are_dropped_and_the_transaction_goes_on() -> None:
    transaction = BindingTransaction(TID, T0)
    hostile = [
        b"",
        b"\x00" * 19,
        b"GET / HTTP/1.1\r\n\r\n",
        answer(mapped=("198.51.100.1", 1), tid=b"\xff" * 12),  # another transaction
        answer(StunClass.REQUEST),  # a request, not an answer
        answer(mapped=("198.51.100.1", 1), fingerprint=True)[:-1] + b"\x00",  # bad CRC
        # An unknown comprehension-required attribute: discarded (RFC 8489 section 6.3.3).
        encode_message(
            StunMessage(
                StunClass.SUCCESS,
                StunMethod.BINDING,
                TID,
                mapped=("198.51.100.1", 1),
                other=((0x0028, b""),),
            )
        ),
    ]
    for data in hostile:
        assert not transaction.receive(data)
    assert transaction.dropped == len(hostile) and not transaction.done
    assert transaction.receive(answer(mapped=("203.0.113.7", 1)))
    assert transaction.mapped == ("203.0.113.7", 1)
    assert not transaction.receive(answer(mapped=("198.51.100.9", 9)))  # after the end
    assert transaction.mapped == ("203.0.113.7", 1)
