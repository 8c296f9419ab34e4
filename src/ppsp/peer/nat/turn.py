"""A TURN client (RFC 8656) for one UDP relay, sans-I/O: a peer that no other peer can reach
directly (behind a NAT that maps per destination) gets a RELAY address on a TURN server and
exchanges datagrams with the peers it permits through it.

States, as a table (anything else is refused with :class:`~ppsp.errors.StunError`):

============  ==========================================  ============
state         event                                       next state
============  ==========================================  ============
ALLOCATING    401 with REALM and NONCE (the challenge)    ALLOCATING
ALLOCATING    438 Stale Nonce (with a new NONCE)          ALLOCATING
ALLOCATING    success with XOR-RELAYED-ADDRESS            ALLOCATED
ALLOCATING    any other error answer, or no answer        FAILED
ALLOCATED     Refresh success (LIFETIME)                  ALLOCATED
ALLOCATED     Refresh refused or unanswered               FAILED
ALLOCATED     :meth:`TurnClient.close`                    CLOSED
============  ==========================================  ============

The first Allocate carries no credentials: the server answers 401 with its REALM and NONCE,
and every later request carries USERNAME, REALM, NONCE and a MESSAGE-INTEGRITY under the
long-term key MD5(username:realm:password) (RFC 8489 section 9.2); a 438 answer gives a new
NONCE and the request is sent again once.  The allocation is refreshed a minute before its
LIFETIME ends and each permission every 4 minutes (they last 5, RFC 8656 section 9).
Datagrams go out as Send indications and come in as Data indications (no channels: a
ChannelBind saves 32 bytes a datagram, a refinement).  Answers whose MESSAGE-INTEGRITY does
not match the key are dropped, like every datagram that is not an answer to a request in
flight or a Data indication.

Time is passed in; transaction IDs come from the ``new_id`` function the I/O layer gives (12
random bytes each).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ppsp.codecs import turn as attrs
from ppsp.codecs.stun import decode_message, encode_message, integrity_matches, is_stun
from ppsp.errors import StunError, StunFormatError
from ppsp.peer.nat.transaction import QUICK, ClientTransaction, Retransmission
from ppsp.wire.stun import Attr, StunClass, StunMessage, StunMethod

__all__ = [
    "PERMISSION_REFRESH",
    "RELAYED_MESSAGE_MAX",
    "Allocated",
    "DataReceived",
    "Failed",
    "PermissionRefused",
    "Permitted",
    "TurnClient",
    "TurnEvent",
    "TurnState",
    "long_term_key",
]

PERMISSION_REFRESH = 240.0
"""Seconds between refreshes of a permission (it lasts 300 s)."""
REFRESH_MARGIN = 60.0
"""An allocation is refreshed this long before its lifetime ends."""
MAX_PERMISSIONS = 64
"""Most peer addresses permitted at once on one relay."""
RELAYED_MESSAGE_MAX = 65507
"""Longest message to or from the TURN server: a Send or Data indication carries a peer's
datagram (a PPSPP DATA of an 8 KiB chunk, say), so up to a UDP datagram's largest payload,
where other STUN messages stay under 1280 bytes."""


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """The long-term credential key: MD5(username ":" realm ":" password) (RFC 8489 9.2.2)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).digest()


class TurnState(Enum):
    """Where the allocation stands (see the module's table)."""

    ALLOCATING = "allocating"
    ALLOCATED = "allocated"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Allocated:
    """The relay exists: peers reach this client at ``relayed``; ``mapped`` is the client's
    reflexive address as the server saw it."""

    relayed: tuple[str, int]
    mapped: tuple[str, int] | None
    lifetime: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    """A datagram from ``peer`` came through the relay."""

    peer: tuple[str, int]
    data: bytes


@dataclass(frozen=True, slots=True)
class Failed:
    """The allocation failed or was lost; ``reason`` is one line."""

    reason: str


@dataclass(frozen=True, slots=True)
class Permitted:
    """The server installed (or refreshed) the permission for ``peer_ip``."""

    peer_ip: str


@dataclass(frozen=True, slots=True)
class PermissionRefused:
    """The server refused (or did not answer) the permission for ``peer_ip``; the relay
    stays."""

    peer_ip: str
    reason: str


TurnEvent = Allocated | DataReceived | Failed | Permitted | PermissionRefused


class TurnClient:
    """One allocation on one TURN server (see the module docstring).

    Call :meth:`start` for the first request; feed :meth:`receive` every datagram from the
    server and call :meth:`timer` at :meth:`next_deadline`; each returns the datagrams to send
    to the server (and :meth:`receive` the events).
    """

    def __init__(
        self,
        username: str,
        password: str,
        new_id: Callable[[], bytes],
        *,
        retransmission: Retransmission = QUICK,
        lifetime: int = 600,
    ) -> None:
        self.username = username
        self.password = password
        self.state = TurnState.ALLOCATING
        self.relayed: tuple[str, int] | None = None
        self.dropped = 0
        """Datagrams dropped: not STUN, not ours, or failing the integrity check."""
        self._new_id = new_id
        self._retransmission = retransmission
        self._lifetime = lifetime
        self._realm: str | None = None
        self._nonce: str | None = None
        self._key: bytes | None = None
        self._stale_retried = False
        self._pending: dict[bytes, tuple[ClientTransaction, str]] = {}  # id -> (it, purpose)
        self._permissions: dict[str, float] = {}  # peer IP -> when to refresh it
        self._refresh_at: float | None = None

    # -- requests ------------------------------------------------------------------------------

    def start(self, now: float) -> list[bytes]:
        """The first Allocate request (no credentials: the server's 401 gives the realm)."""
        return [self._request(StunMethod.ALLOCATE, self._allocate_attrs(), now, "allocate")]

    def permit(self, peer_ip: str, now: float) -> list[bytes]:
        """Let datagrams from and to ``peer_ip`` through the relay (a CreatePermission)."""
        if self.state is not TurnState.ALLOCATED:
            raise StunError(f"cannot permit a peer on a relay that is {self.state.value}")
        if peer_ip not in self._permissions and len(self._permissions) >= MAX_PERMISSIONS:
            raise StunError(f"more than {MAX_PERMISSIONS} peers permitted on one relay")
        self._permissions[peer_ip] = now + PERMISSION_REFRESH
        return [self._permission_request(peer_ip, now)]

    def forget(self, peer_ip: str) -> None:
        """Stop refreshing the permission for ``peer_ip`` (the server drops it when its
        lifetime ends, within 5 minutes) and send it nothing more; no datagram."""
        self._permissions.pop(peer_ip, None)

    @property
    def permitted(self) -> int:
        """Peer IPs permitted (or being permitted) now."""
        return len(self._permissions)

    def send(self, peer: tuple[str, int], data: bytes) -> bytes:
        """A Send indication carrying ``data`` to ``peer`` (permitted first)."""
        if self.state is not TurnState.ALLOCATED or peer[0] not in self._permissions:
            raise StunError(f"{peer[0]} is not permitted on this relay")
        tid = self._new_id()
        message = StunMessage(
            StunClass.INDICATION,
            StunMethod.SEND,
            tid,
            other=(attrs.peer_address(peer, tid), (Attr.DATA, data)),
        )
        return encode_message(message, limit=RELAYED_MESSAGE_MAX)

    def close(self, now: float) -> list[bytes]:
        """Release the allocation (a Refresh with LIFETIME 0); nothing more is sent after."""
        if self.state is not TurnState.ALLOCATED:
            self.state = TurnState.CLOSED
            return []
        self.state = TurnState.CLOSED
        datagram = self._request(StunMethod.REFRESH, [attrs.lifetime(0)], now, "release")
        self._pending.clear()
        return [datagram]

    # -- timers --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must be called (None: only on datagrams)."""
        if self.state in (TurnState.FAILED, TurnState.CLOSED):
            return None
        times = [t.next_deadline() for t, _ in self._pending.values()]
        times.append(self._refresh_at)
        if self.state is TurnState.ALLOCATED:
            times.extend(self._permissions.values())
        return min((t for t in times if t is not None), default=None)

    def timer(self, now: float) -> tuple[list[bytes], list[TurnEvent]]:
        """Retransmissions and refreshes due at ``now``, and a failure when a request of the
        allocation went unanswered."""
        out: list[bytes] = []
        events: list[TurnEvent] = []
        for tid, (transaction, purpose) in list(self._pending.items()):
            again = transaction.timer(now)
            if again is not None:
                out.append(again)
            elif transaction.timed_out:
                del self._pending[tid]
                if purpose in ("allocate", "refresh"):
                    events.append(self._fail(f"the TURN server did not answer ({purpose})"))
                elif purpose.startswith("permission:"):
                    peer_ip = purpose.partition(":")[2]
                    events.append(PermissionRefused(peer_ip, "the TURN server did not answer"))
        if self.state is TurnState.ALLOCATED:
            if self._refresh_at is not None and now >= self._refresh_at:
                self._refresh_at = None
                attributes = [attrs.lifetime(self._lifetime)]
                out.append(self._request(StunMethod.REFRESH, attributes, now, "refresh"))
            for peer_ip, due in list(self._permissions.items()):
                if now >= due:
                    self._permissions[peer_ip] = now + PERMISSION_REFRESH
                    out.append(self._permission_request(peer_ip, now))
        return out, events

    # -- datagrams -----------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> tuple[list[bytes], list[TurnEvent]]:
        """A datagram from the server: the datagrams to send and the events it makes."""
        if self.state in (TurnState.FAILED, TurnState.CLOSED) or not is_stun(
            data, limit=RELAYED_MESSAGE_MAX
        ):
            self.dropped += 1
            return [], []
        try:
            message = decode_message(data, limit=RELAYED_MESSAGE_MAX)
        except StunFormatError:
            self.dropped += 1
            return [], []
        if message.cls is StunClass.INDICATION and message.method is StunMethod.DATA:
            try:
                carried = attrs.data(message)
            except StunFormatError:
                carried = None
            if carried is None or self.state is not TurnState.ALLOCATED:
                self.dropped += 1
                return [], []
            return [], [DataReceived(*carried)]
        entry = self._pending.get(message.transaction_id)
        if entry is None or not entry[0].receive(data):
            self.dropped += 1
            return [], []
        purpose = entry[1]
        del self._pending[message.transaction_id]
        if (
            self._key is not None
            and message.cls is StunClass.SUCCESS
            and not integrity_matches(data, self._key)
        ):
            # A success answer not from the server we share the key with.
            self.dropped += 1
            return [], [self._fail("a TURN answer failed its integrity check")]
        return self._answered(message, purpose, now)

    def _answered(
        self, message: StunMessage, purpose: str, now: float
    ) -> tuple[list[bytes], list[TurnEvent]]:
        if message.cls is StunClass.ERROR:
            code = message.error[0] if message.error is not None else 400
            if purpose == "allocate" and code in (401, 438) and self._challenge(message, code):
                again = self._request(StunMethod.ALLOCATE, self._allocate_attrs(), now, "allocate")
                return [again], []
            if purpose.startswith("permission:") and code == 438 and self._challenge(message, code):
                # Asked again at once with the new nonce.
                return [self._permission_request(purpose.partition(":")[2], now)], []
            reason = message.error[1] if message.error is not None else ""
            if purpose in ("allocate", "refresh"):
                return [], [self._fail(f"the TURN server refused ({purpose}): {code} {reason}")]
            if purpose.startswith("permission:"):
                peer_ip = purpose.partition(":")[2]
                self._permissions.pop(peer_ip, None)
                return [], [PermissionRefused(peer_ip, f"{code} {reason}".strip())]
            return [], []
        if purpose == "allocate":
            try:
                relayed = attrs.relayed_address(message)
                value = attrs.find(message, Attr.LIFETIME)
                lifetime = attrs.read_lifetime(value) if value is not None else self._lifetime
            except StunFormatError as exc:
                return [], [self._fail(f"a malformed Allocate answer: {exc}")]
            if relayed is None:
                return [], [self._fail("the Allocate answer has no relayed address")]
            self.state = TurnState.ALLOCATED
            self.relayed = relayed
            self._refresh_at = now + max(1.0, lifetime - REFRESH_MARGIN)
            return [], [Allocated(relayed, message.mapped, lifetime)]
        if purpose.startswith("permission:"):
            return [], [Permitted(purpose.partition(":")[2])]
        if purpose == "refresh":
            value = attrs.find(message, Attr.LIFETIME)
            lifetime = self._lifetime
            if value is not None:
                with contextlib.suppress(StunFormatError):
                    lifetime = attrs.read_lifetime(value)
            self._refresh_at = now + max(1.0, lifetime - REFRESH_MARGIN)
        return [], []

    # -- internals -----------------------------------------------------------------------------

    def _challenge(self, message: StunMessage, code: int) -> bool:
        """Take the realm and nonce of a 401 or 438; False when they cannot be used (a second
        401 after credentials were sent means they are wrong; a second 438 in a row is not
        retried)."""
        try:
            realm_value = attrs.find(message, Attr.REALM)
            nonce_value = attrs.find(message, Attr.NONCE)
            realm = attrs.read_text(realm_value) if realm_value is not None else self._realm
            nonce = attrs.read_text(nonce_value) if nonce_value is not None else None
        except StunFormatError:
            return False
        if nonce is None or realm is None:
            return False
        if code == 401 and self._key is not None:
            return False  # the credentials themselves were refused
        if code == 438:
            if self._stale_retried:
                return False
            self._stale_retried = True
        self._realm, self._nonce = realm, nonce
        self._key = long_term_key(self.username, realm, self.password)
        return True

    def _allocate_attrs(self) -> list[tuple[int, bytes]]:
        return [attrs.requested_transport_udp(), attrs.lifetime(self._lifetime)]

    def _permission_request(self, peer_ip: str, now: float) -> bytes:
        tid = self._new_id()
        peer = attrs.peer_address((peer_ip, 0), tid)
        purpose = f"permission:{peer_ip}"
        return self._request(StunMethod.CREATE_PERMISSION, [peer], now, purpose, tid)

    def _request(
        self,
        method: StunMethod,
        attributes: list[tuple[int, bytes]],
        now: float,
        purpose: str,
        tid: bytes | None = None,
    ) -> bytes:
        tid = tid if tid is not None else self._new_id()
        other = list(attributes)
        if self._key is not None and self._realm is not None and self._nonce is not None:
            other += [
                attrs.text(Attr.USERNAME, self.username),
                attrs.text(Attr.REALM, self._realm),
                attrs.text(Attr.NONCE, self._nonce),
            ]
        message = StunMessage(StunClass.REQUEST, method, tid, other=tuple(other), fingerprint=True)
        data = encode_message(message, integrity_key=self._key)
        self._pending[tid] = (ClientTransaction(data, tid, now, self._retransmission), purpose)
        return data

    def _fail(self, reason: str) -> Failed:
        self.state = TurnState.FAILED
        self._pending.clear()
        return Failed(reason)
