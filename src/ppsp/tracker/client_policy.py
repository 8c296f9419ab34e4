"""The tracker client's policies without I/O: retries, HTTP statuses, 401 answers.

What the I/O client (:mod:`ppsp.tracker.net.client`) does when an attempt fails or an answer
comes back is decided here, on values, with no socket, clock or sleep (docs/PROTOCOL.md
"Tracker client"):

- **Retries** (:class:`RetryPolicy`, :class:`Attempts`): each request is sent, and after a
  failure (:class:`Failure`: no answer, an answer that cannot be taken, a busy tracker) sent
  again, the identical bytes, after a pause that doubles each time (``backoff``, ``2 *
  backoff``, ...), at most ``retries`` times; then the request is given up with a
  :class:`~ppsp.errors.TrackerUnreachable` whose message is the sentence of the last failure.
  A TLS failure (an untrusted certificate, a failed handshake) is given up at once with a
  :class:`TrackerTLSError`: a retry would see the same certificate.  ``timeout`` is the time
  allowed to each attempt.
- **Answers** (:func:`read_answer`, :func:`status_problem`): an HTTP status the tracker protocol
  does not use (a proxy's 502, a redirect) is not the tracker's answer but a failed attempt, and
  so is a body that cannot be decoded.
- **401** (:func:`authentication_failure`, :func:`bearer_challenge`): never retried; one sentence
  saying that a token is needed or why the one sent was refused.

The I/O layer only says what happened (the bytes and status of an answer, or the sentence of
a failed attempt, which it words from its library's exceptions) and waits the pauses these
objects return.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ppsp.errors import AuthenticationRequired, RemoteTrackerError, TrackerUnreachable
from ppsp.tracker.client_session import InvalidAnswer, Retry
from ppsp.wire.tracker import ErrorResponse, TrackerResponse

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_CHALLENGE_CHARS",
    "PROTOCOL_STATUSES",
    "TOKEN_HINT",
    "Attempts",
    "Failure",
    "FailureKind",
    "GiveUp",
    "NotTaken",
    "Reading",
    "Resend",
    "RetryPolicy",
    "Taken",
    "TrackerTLSError",
    "authentication_failure",
    "bearer_challenge",
    "one_line",
    "read_answer",
    "status_problem",
]

MAX_ANSWER_BYTES = 4 << 20
"""An answer larger than this is treated as invalid (a peer list is a few kilobytes)."""

PROTOCOL_STATUSES = frozenset({200, 400, 401, 403, 404, 413, 500, 503})
"""HTTP statuses a PPSP tracker answers with (docs/PROTOCOL.md); any other is not the tracker's
answer (a proxy's 502, a redirect, ...) and counts as a failed attempt."""

TOKEN_HINT = "give --token or set PPSP_TOKEN"
"""What a user without a token is told to do when the tracker asks for one."""

MAX_CHALLENGE_CHARS = 2048
"""How much of a ``WWW-Authenticate`` header is read; the rest is ignored."""

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)')
"""One ``name=value`` or ``name="quoted value"`` of a ``WWW-Authenticate`` challenge."""

_GENERIC_401_PHRASES = frozenset({"unauthorized", "authentication required", ""})
"""Reason phrases of a 401 that say nothing about the token."""


class TrackerTLSError(TrackerUnreachable):
    """The TLS connection to the tracker failed in a way no retry mends: an untrusted, expired
    or mismatched certificate, or a server that does not speak TLS on the port.  Its message is
    one sentence naming the problem."""


# -- retries ---------------------------------------------------------------------------------


class FailureKind(Enum):
    """What kind of failure an attempt met; decides whether a retry may mend it."""

    LOST = "lost"
    """No answer: a timeout, a refused, reset or closed connection, an unknown name."""
    INVALID = "invalid"
    """An answer that cannot be taken: unreadable, too large, another status, another
    transaction's."""
    BUSY = "busy"
    """The tracker answered 503 (its storage may answer again)."""
    TLS = "tls"
    """An untrusted certificate or a failed handshake: the same again next time."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt: its kind and the sentence a user reads if it is the last one."""

    kind: FailureKind
    sentence: str

    @classmethod
    def of_retry(cls, verdict: Retry, tracker: str) -> Failure:
        """The failure a :class:`~ppsp.tracker.client_session.Retry` verdict stands for
        (``tracker`` names the tracker in the sentence)."""
        error = verdict.error
        if isinstance(error, InvalidAnswer):
            return cls(FailureKind.INVALID, str(error))
        return cls(FailureKind.BUSY, f"tracker {tracker} is unavailable ({error.reason})")


@dataclass(frozen=True, slots=True)
class Resend:
    """Send the identical bytes again after ``pause`` seconds."""

    pause: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop trying: raise ``error`` (its message the sentence of the last failure)."""

    error: TrackerUnreachable


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a request is retried: ``retries`` re-sends after the first attempt (a negative count
    is none), pauses of ``backoff`` seconds doubled each time, ``timeout`` seconds allowed to
    each attempt."""

    retries: int = 3
    backoff: float = 0.25
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            object.__setattr__(self, "retries", 0)

    def pause(self, resend: int) -> float:
        """The pause before re-send number ``resend`` (1 for the first re-send)."""
        return self.backoff * 2.0 ** (resend - 1)


class Attempts:
    """The attempts of one request under a :class:`RetryPolicy`.

    Give each failed attempt to :meth:`failed`, which says whether to send again and after
    which pause (:class:`Resend`) or to stop (:class:`GiveUp`).  :attr:`sent` counts the
    attempts made so far (the first included).
    """

    __slots__ = ("_policy", "_sent")

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._sent = 1  # the first attempt goes out at once

    @property
    def sent(self) -> int:
        """How many attempts were made (1 until the first re-send)."""
        return self._sent

    def failed(self, failure: Failure) -> Resend | GiveUp:
        """What to do after ``failure``, the failure of the latest attempt."""
        if failure.kind is FailureKind.TLS:
            return GiveUp(TrackerTLSError(failure.sentence))
        if self._sent > self._policy.retries:
            return GiveUp(TrackerUnreachable(failure.sentence))
        pause = self._policy.pause(self._sent)
        self._sent += 1
        return Resend(pause)


# -- answers ---------------------------------------------------------------------------------


def status_problem(status: int, reason: str) -> InvalidAnswer | None:
    """None when ``status`` is one the tracker protocol answers with; else the failed attempt
    it stands for (the answer of a proxy, a redirect, another server)."""
    if status in PROTOCOL_STATUSES:
        return None
    return InvalidAnswer(f"tracker answered HTTP {status}" + (f" {reason}" if reason else ""))


Decoder = Callable[[bytes, int, str], TrackerResponse | ErrorResponse]
"""A codec's ``decode_response``: an answer's body, HTTP status and reason phrase, decoded."""


@dataclass(frozen=True, slots=True)
class Taken:
    """An answer of the tracker protocol, decoded: hand ``answer`` to the session."""

    answer: TrackerResponse | ErrorResponse


@dataclass(frozen=True, slots=True)
class NotTaken:
    """An answer not to hand to the session: raise ``error`` (an
    :class:`~ppsp.errors.AuthenticationRequired` for a 401, an
    :class:`~ppsp.tracker.client_session.InvalidAnswer` for a failed attempt).  ``answer`` is
    the body decoded, when it could be (for traces)."""

    answer: TrackerResponse | ErrorResponse | None
    error: AuthenticationRequired | InvalidAnswer


Reading = Taken | NotTaken
"""What :func:`read_answer` makes of an HTTP answer."""


def read_answer(
    decode: Decoder,
    data: bytes,
    status: int,
    reason: str,
    *,
    challenge: str | None,
    tracker: str,
    token_sent: bool,
) -> Reading:
    """Read an HTTP answer: ``data`` with its ``status`` and ``reason`` phrase, decoded with
    ``decode``; ``challenge`` is its ``WWW-Authenticate`` header, ``tracker`` names the tracker
    in sentences, ``token_sent`` says whether the request carried a token.

    A 401, whatever its body (a proxy's page, the tracker's error), is about the credentials:
    never retried, one sentence (:func:`authentication_failure`).  A status the protocol does
    not use and a body that cannot be decoded are failed attempts.
    """
    if status == 401:
        answer: TrackerResponse | ErrorResponse | None = None
        with contextlib.suppress(RemoteTrackerError):  # the sentence does without the body
            answer = decode(data, status, reason)
        failure = authentication_failure(
            tracker, token_sent=token_sent, challenge=challenge, answer=answer
        )
        return NotTaken(answer, failure)
    problem = status_problem(status, reason)
    if problem is not None:
        return NotTaken(None, problem)
    try:
        return Taken(decode(data, status, reason))
    except RemoteTrackerError as exc:
        unreadable = InvalidAnswer(
            f"tracker {tracker} sent an answer that cannot be read"
            f" (HTTP {status}): {' '.join(str(exc).split())[:200]}"
        )
        unreadable.__cause__ = exc
        return NotTaken(None, unreadable)


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line of printable characters, at most ``limit`` of them."""
    words = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return words[:limit]


def bearer_challenge(header: str | None) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer ...`` challenge (RFC 6750 section 3).

    Names in lower case, quoted values unquoted; an empty dict when the header is missing or
    holds no Bearer challenge.  Hostile input is normal: only the first
    :data:`MAX_CHALLENGE_CHARS` characters are read.
    """
    if not header:
        return {}
    text = header[:MAX_CHALLENGE_CHARS]
    match = re.search(r"(?i)(?:^|,)\s*bearer(?:\s+|$)", text)
    if match is None:
        return {}
    params: dict[str, str] = {}
    for param in _AUTH_PARAM.finditer(text, match.end()):
        name, value = param.group(1).lower(), param.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(name, value)
    return params


def authentication_failure(
    tracker: str,
    *,
    token_sent: bool,
    challenge: str | None,
    answer: TrackerResponse | ErrorResponse | None,
) -> AuthenticationRequired:
    """The error a 401 answer stands for, its message one sentence for the user.

    ``tracker`` names the tracker; ``token_sent`` says whether the request carried a token;
    ``challenge`` is the answer's ``WWW-Authenticate`` header and ``answer`` its decoded body
    (None when it could not be read).  Without a token the sentence says one is needed; with
    one, why it was refused: the challenge's ``error_description``, else its ``error``, else
    the body's reason phrase unless it only repeats the status, else ``invalid token``.
    """
    if not token_sent:
        message = f"tracker {tracker} requires a token: {TOKEN_HINT}"
        reason = "token required"
    else:
        params = bearer_challenge(challenge)
        reason = one_line(params.get("error_description", "")) or one_line(params.get("error", ""))
        if not reason and isinstance(answer, ErrorResponse) and answer.reason:
            # The tracker's own words, unless they only repeat the status.
            said = one_line(answer.reason)
            if said.lower() not in _GENERIC_401_PHRASES:
                reason = said
        reason = reason or "invalid token"
        message = f"tracker {tracker} refused the token: {reason}"
    return AuthenticationRequired(
        message,
        transaction_id=answer.transaction_id if isinstance(answer, ErrorResponse) else None,
        reason=reason,
    )
