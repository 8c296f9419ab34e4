"""The TURN client (RFC 8656) against a scripted server: the challenge, credentials and
integrity, stale nonces, refreshes, permissions, data, and what a stranger's datagrams cost."""

from __future__ import annotations

import itertools

import pytest

from ppsp.codecs import turn as attrs
from ppsp.codecs.stun import decode_message, encode_message, integrity_matches, read_address
from ppsp.errors import StunError
from ppsp.peer.nat.turn import (
    PERMISSION_REFRESH,
    RELAYED_MESSAGE_MAX,
    Allocated,
    DataReceived,
    Failed,
    PermissionRefused,
    Permitted,
    TurnClient,
    TurnState,
    long_term_key,
)
from ppsp.wire.stun import Attr, StunClass, StunMessage, StunMethod

T0 = 100.0
KEY = long_term_key("ppsp", "ppsp.test", "secret")
RELAYED = ("198.51.100.1", 50000)
MAPPED = ("203.0.113.5", 40000)


def client(password: str = "secret") -> TurnClient:
    counter = itertools.count(1)
    return TurnClient("ppsp", password, lambda: next(counter).to_bytes(12, "big"), lifetime=600)


def answer(
    request: bytes,
    cls: StunClass,
    *,
    other: tuple[tuple[int, bytes], ...] = (),
    error: tuple[int, str] | None = None,
    mapped: tuple[str, int] | None = None,
    key: bytes | None = None,
) -> bytes:
    asked = decode_message(request)
    message = StunMessage(cls, asked.method, asked.transaction_id, mapped=mapped, error=error,
                          other=other, fingerprint=True)  # fmt: skip
    return encode_message(message, integrity_key=key)


def challenge(request: bytes, code: int = 401, nonce: str = "n1") -> bytes:
    other = (attrs.text(Attr.REALM, "ppsp.test"), attrs.text(Attr.NONCE, nonce))
    return answer(request, StunClass.ERROR, error=(code, "Unauthorized"), other=other)


def allocated(request: bytes, lifetime: int = 600, key: bytes = KEY) -> bytes:
    tid = decode_message(request).transaction_id
    other = ((Attr.XOR_RELAYED_ADDRESS, attrs.peer_address(RELAYED, tid)[1]),
             attrs.lifetime(lifetime))  # fmt: skip
    return answer(request, StunClass.SUCCESS, other=other, mapped=MAPPED, key=key)


def allocate(turn: TurnClient) -> None:
    (first,) = turn.start(T0)
    (second,), events = turn.receive(challenge(first), T0)
    assert events == []
    out, events = turn.receive(allocated(second), T0)
    assert out == [] and events == [Allocated(RELAYED, MAPPED, 600)]


def test_the_challenge_then_an_allocation_with_long_term_credentials() -> None:
    turn = client()
    (first,) = turn.start(T0)
    request = decode_message(first)
    assert request.method is StunMethod.ALLOCATE and request.cls is StunClass.REQUEST
    assert attrs.find(request, Attr.REQUESTED_TRANSPORT) == bytes((17, 0, 0, 0))
    assert attrs.find(request, Attr.USERNAME) is None  # no credentials before the challenge
    (second,), _ = turn.receive(challenge(first), T0)
    again = decode_message(second)
    assert attrs.find(again, Attr.USERNAME) == b"ppsp"
    assert attrs.find(again, Attr.REALM) == b"ppsp.test"
    assert attrs.find(again, Attr.NONCE) == b"n1"
    assert integrity_matches(second, KEY) and again.fingerprint
    _, events = turn.receive(allocated(second), T0)
    assert events == [Allocated(RELAYED, MAPPED, 600)]
    assert turn.state is TurnState.ALLOCATED and turn.relayed == RELAYED


def test_wrong_credentials_fail_after_the_second_401() -> None:
    turn = client("wrong")
    (first,) = turn.start(T0)
    (second,), _ = turn.receive(challenge(first), T0)
    out, events = turn.receive(challenge(second), T0)
    assert out == [] and len(events) == 1 and isinstance(events[0], Failed)
    assert "401" in events[0].reason and turn.state is TurnState.FAILED


def test_a_stale_nonce_is_retried_once_with_the_new_one() -> None:
    turn = client()
    (first,) = turn.start(T0)
    (second,), _ = turn.receive(challenge(first), T0)
    (third,), _ = turn.receive(challenge(second, 438, nonce="n2"), T0)
    assert attrs.find(decode_message(third), Attr.NONCE) == b"n2"
    _, events = turn.receive(challenge(third, 438, nonce="n3"), T0)
    assert len(events) == 1 and isinstance(events[0], Failed)


def test_a_success_answer_failing_the_integrity_check_fails_the_allocation() -> None:
    turn = client()
    (first,) = turn.start(T0)
    (second,), _ = turn.receive(challenge(first), T0)
    _, events = turn.receive(allocated(second, key=b"not the key"), T0)
    assert len(events) == 1 and isinstance(events[0], Failed) and "integrity" in events[0].reason


def test_permissions_data_and_send_indications() -> None:
    turn = client()
    with pytest.raises(StunError):
        turn.permit("198.51.100.9", T0)  # not allocated yet
    allocate(turn)
    (request,) = turn.permit("198.51.100.9", T0)
    asked = decode_message(request)
    assert asked.method is StunMethod.CREATE_PERMISSION and integrity_matches(request, KEY)
    peer_value = attrs.find(asked, Attr.XOR_PEER_ADDRESS)
    assert peer_value is not None
    assert read_address(peer_value, asked.transaction_id, xor=True)[0] == "198.51.100.9"
    _, events = turn.receive(answer(request, StunClass.SUCCESS, key=KEY), T0)
    assert events == [Permitted("198.51.100.9")]
    sent = decode_message(turn.send(("198.51.100.9", 7000), b"payload"))
    assert sent.cls is StunClass.INDICATION and sent.method is StunMethod.SEND
    assert attrs.data(sent) == (("198.51.100.9", 7000), b"payload")
    with pytest.raises(StunError):
        turn.send(("198.51.100.10", 7000), b"not permitted")
    tid = b"\x07" * 12
    indication = StunMessage(
        StunClass.INDICATION, StunMethod.DATA, tid,
        other=(attrs.peer_address(("198.51.100.9", 7000), tid), (Attr.DATA, b"back")),
    )  # fmt: skip
    _, events = turn.receive(encode_message(indication), T0)
    assert events == [DataReceived(("198.51.100.9", 7000), b"back")]


def test_a_refused_permission_leaves_the_relay() -> None:
    turn = client()
    allocate(turn)
    (request,) = turn.permit("198.51.100.9", T0)
    _, events = turn.receive(answer(request, StunClass.ERROR, error=(403, "Forbidden")), T0)
    assert events == [PermissionRefused("198.51.100.9", "403 Forbidden")]
    assert turn.state is TurnState.ALLOCATED


def test_refreshes_come_before_the_lifetime_and_permissions_every_four_minutes() -> None:
    turn = client()
    allocate(turn)
    (permission,) = turn.permit("198.51.100.9", T0)
    turn.receive(answer(permission, StunClass.SUCCESS, key=KEY), T0)
    assert turn.next_deadline() == T0 + PERMISSION_REFRESH
    out, _ = turn.timer(T0 + PERMISSION_REFRESH)
    assert [decode_message(d).method for d in out] == [StunMethod.CREATE_PERMISSION]
    turn.receive(answer(out[0], StunClass.SUCCESS, key=KEY), T0 + PERMISSION_REFRESH)
    out, _ = turn.timer(T0 + 540)  # 600 s lifetime, refreshed a minute before
    refresh = [d for d in out if decode_message(d).method is StunMethod.REFRESH]
    assert len(refresh) == 1 and integrity_matches(refresh[0], KEY)
    answered = answer(refresh[0], StunClass.SUCCESS, other=(attrs.lifetime(600),), key=KEY)
    turn.receive(answered, T0 + 540)
    assert turn.state is TurnState.ALLOCATED


def test_an_unanswered_allocation_fails_after_the_retransmissions() -> None:
    turn = client()
    turn.start(T0)
    sent, now, events = 1, T0, []
    while turn.state is TurnState.ALLOCATING:
        deadline = turn.next_deadline()
        assert deadline is not None
        now = deadline
        out, events = turn.timer(now)
        sent += len(out)
    assert sent == 4 and len(events) == 1 and isinstance(events[0], Failed)
    assert turn.next_deadline() is None


def test_strangers_datagrams_are_dropped() -> None:
    turn = client()
    (first,) = turn.start(T0)
    tid = b"\x09" * 12
    stray_data = StunMessage(
        StunClass.INDICATION, StunMethod.DATA, tid,
        other=(attrs.peer_address(("198.51.100.9", 1), tid), (Attr.DATA, b"x")),
    )  # fmt: skip
    for data in (b"", b"junk" * 10, encode_message(stray_data), challenge(first)[:-1] + b"\x00"):
        assert turn.receive(data, T0) == ([], [])
    assert turn.dropped == 4 and turn.state is TurnState.ALLOCATING


def test_close_releases_with_lifetime_zero() -> None:
    turn = client()
    allocate(turn)
    (release,) = turn.close(T0)
    message = decode_message(release)
    assert message.method is StunMethod.REFRESH
    assert attrs.find(message, Attr.LIFETIME) == bytes(4)
    assert turn.state is TurnState.CLOSED and turn.next_deadline() is None


def test_datagrams_of_a_large_chunk_go_both_ways_in_indications() -> None:
    # A PPSPP DATA of an 8 KiB chunk is far over the 1280 bytes of other STUN messages.
    turn = client()
    allocate(turn)
    (request,) = turn.permit("198.51.100.9", T0)
    turn.receive(answer(request, StunClass.SUCCESS, key=KEY), T0)
    payload = bytes(range(256)) * 33  # 8448 bytes
    sent = decode_message(turn.send(("198.51.100.9", 7000), payload), limit=RELAYED_MESSAGE_MAX)
    assert attrs.data(sent) == (("198.51.100.9", 7000), payload)
    tid = b"\x07" * 12
    indication = StunMessage(
        StunClass.INDICATION, StunMethod.DATA, tid,
        other=(attrs.peer_address(("198.51.100.9", 7000), tid), (Attr.DATA, payload)),
    )  # fmt: skip
    _, events = turn.receive(encode_message(indication, limit=RELAYED_MESSAGE_MAX), T0)
    assert events == [DataReceived(("198.51.100.9", 7000), payload)]
    with pytest.raises(StunError):  # the bound of a UDP datagram still holds
        turn.send(("198.51.100.9", 7000), bytes(RELAYED_MESSAGE_MAX))


def test_a_forgotten_permission_is_neither_refreshed_nor_sent_to() -> None:
    turn = client()
    allocate(turn)
    for ip in ("198.51.100.9", "198.51.100.10"):
        (request,) = turn.permit(ip, T0)
        turn.receive(answer(request, StunClass.SUCCESS, key=KEY), T0)
    assert turn.permitted == 2
    turn.forget("198.51.100.9")
    turn.forget("198.51.100.77")  # never permitted: nothing happens
    assert turn.permitted == 1
    with pytest.raises(StunError):
        turn.send(("198.51.100.9", 7000), b"gone")
    out, _ = turn.timer(T0 + PERMISSION_REFRESH)
    refreshed = [decode_message(d) for d in out]
    assert [m.method for m in refreshed] == [StunMethod.CREATE_PERMISSION]
    value = attrs.find(refreshed[0], Attr.XOR_PEER_ADDRESS)
    assert value is not None
    assert read_address(value, refreshed[0].transaction_id, xor=True)[0] == "198.51.100.10"
