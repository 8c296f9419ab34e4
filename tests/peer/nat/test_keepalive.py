"""The Binding keeper: one Binding every interval (inside a NAT binding's 25 s), retried after
a failure, reporting the first reflexive address and each change, dropping stray answers."""

from __future__ import annotations

import pytest

from ppsp.codecs.stun import decode_message, encode_message
from ppsp.errors import StunTimeout
from ppsp.peer.nat.keepalive import REFRESH_INTERVAL, BindingKeeper
from ppsp.wire.stun import StunClass, StunMessage, StunMethod

T0 = 500.0


def tid(n: int) -> bytes:
    return n.to_bytes(12, "big")


def answer(request: bytes, mapped: tuple[str, int]) -> bytes:
    """The server's success answer to ``request``."""
    transaction_id = decode_message(request).transaction_id
    message = StunMessage(StunClass.SUCCESS, StunMethod.BINDING, transaction_id, mapped=mapped)
    return encode_message(message)


def test_the_refresh_interval_is_inside_25_seconds() -> None:
    assert REFRESH_INTERVAL < 25.0


def test_a_binding_every_interval_and_the_changes_reported() -> None:
    keeper = BindingKeeper(T0, interval=20.0)
    assert keeper.next_deadline() == T0
    first = keeper.timer(T0, tid(1))
    assert first is not None and decode_message(first).transaction_id == tid(1)
    assert keeper.receive(answer(first, ("203.0.113.5", 4000)), T0 + 0.01)
    assert keeper.mapped == ("203.0.113.5", 4000)
    # Nothing until the interval has passed, whatever the ID offered.
    assert keeper.next_deadline() == pytest.approx(T0 + 20.01)
    assert keeper.timer(T0 + 10, tid(2)) is None
    second = keeper.timer(T0 + 20.01, tid(3))
    assert second is not None and decode_message(second).transaction_id == tid(3)
    # The same address again is no news; a new one is, and counted.
    assert not keeper.receive(answer(second, ("203.0.113.5", 4000)), T0 + 20.02)
    third = keeper.timer(keeper.next_deadline(), tid(4))
    assert third is not None
    assert keeper.receive(answer(third, ("203.0.113.5", 4001)), keeper.next_deadline())
    assert (keeper.bindings, keeper.answers, keeper.changes) == (3, 3, 1)


def test_a_failed_binding_is_tried_again_after_the_interval() -> None:
    keeper = BindingKeeper(T0, interval=20.0)
    request = keeper.timer(T0, tid(1))
    assert request is not None
    sent = 1
    while keeper.error is None:
        deadline = keeper.next_deadline()
        if keeper.timer(deadline, tid(99)) is not None:
            sent += 1
    assert isinstance(keeper.error, StunTimeout) and sent == 4  # QUICK: four requests
    assert keeper.mapped is None
    # The next Binding starts at the interval after the first request, with a fresh ID.
    assert keeper.next_deadline() == T0 + 20.0
    again = keeper.timer(T0 + 20.0, tid(2))
    assert again is not None and decode_message(again).transaction_id == tid(2)
    assert keeper.receive(answer(again, ("198.51.100.1", 9)), T0 + 20.1)
    assert keeper.error is None


def test_stray_and_late_answers_are_dropped() -> None:
    keeper = BindingKeeper(T0)
    request = keeper.timer(T0, tid(1))
    assert request is not None
    stranger = encode_message(
        StunMessage(StunClass.SUCCESS, StunMethod.BINDING, tid(7), mapped=("192.0.2.1", 1))
    )
    assert not keeper.receive(stranger, T0 + 0.1)
    assert not keeper.receive(b"\x00\x01garbage", T0 + 0.1)
    assert keeper.mapped is None
    good = answer(request, ("192.0.2.2", 2))
    assert keeper.receive(good, T0 + 0.2)
    assert not keeper.receive(good, T0 + 0.3)  # a duplicate, after the transaction ended
    assert keeper.answers == 1


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BindingKeeper(T0, interval=0)
