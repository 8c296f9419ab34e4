"""The tracker client's policies, without sockets, clocks or sleeps: when a failed attempt is
sent again and after which pause, when it is given up, what an HTTP answer is, what a 401 says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppsp.codecs import tracker_json, tracker_xml
from ppsp.codecs.tracker import TrackerCodec
from ppsp.errors import (
    AuthenticationRequired,
    BadRequest,
    ServiceUnavailable,
    TrackerErrorCode,
    TrackerUnreachable,
)
from ppsp.tracker.client_policy import (
    PROTOCOL_STATUSES,
    TOKEN_HINT,
    Attempts,
    Decoder,
    Failure,
    FailureKind,
    GiveUp,
    NotTaken,
    Resend,
    RetryPolicy,
    Taken,
    TrackerTLSError,
    authentication_failure,
    read_answer,
    status_problem,
)
from ppsp.tracker.client_session import InvalidAnswer, Retry
from ppsp.wire.tracker import ErrorResponse, ProtocolVersion, TrackerResponse

V11 = ProtocolVersion.V1_1
TRACKER = "127.0.0.1:7000"
LOST = Failure(FailureKind.LOST, "tracker 127.0.0.1:7000 refused the connection")


# -- retries ---------------------------------------------------------------------------------------


def test_failed_attempts_are_resent_after_doubling_pauses_then_given_up() -> None:
    attempts = Attempts(RetryPolicy(retries=3, backoff=0.5))
    assert attempts.sent == 1
    steps = [attempts.failed(LOST) for _ in range(3)]
    assert steps == [Resend(0.5), Resend(1.0), Resend(2.0)]
    assert attempts.sent == 4  # the first attempt and three re-sends
    last = Failure(FailureKind.LOST, "tracker 127.0.0.1:7000 did not answer within 5 s")
    given_up = attempts.failed(last)
    assert isinstance(given_up, GiveUp)
    # The sentence of the last failure, and not a TLS error (a retry could have mended it).
    assert type(given_up.error) is TrackerUnreachable
    assert str(given_up.error) == last.sentence


@pytest.mark.parametrize("retries", [0, -2])
def test_no_retries_gives_up_at_the_first_failure(retries: int) -> None:
    attempts = Attempts(RetryPolicy(retries=retries))
    assert isinstance(attempts.failed(LOST), GiveUp)


@pytest.mark.parametrize("kind", [FailureKind.LOST, FailureKind.INVALID, FailureKind.BUSY])
def test_every_failure_but_tls_is_retried(kind: FailureKind) -> None:
    assert Attempts(RetryPolicy(backoff=0.25)).failed(Failure(kind, "x")) == Resend(0.25)


def test_a_tls_failure_is_given_up_at_once() -> None:
    """A retry would see the same certificate: no re-send, whatever the retries left."""
    attempts = Attempts(RetryPolicy(retries=5))
    sentence = "tracker 127.0.0.1:7443: certificate verify failed: self-signed certificate"
    step = attempts.failed(Failure(FailureKind.TLS, sentence))
    assert isinstance(step, GiveUp) and isinstance(step.error, TrackerTLSError)
    assert str(step.error) == sentence and attempts.sent == 1


@given(
    retries=st.integers(min_value=-3, max_value=12),
    backoff=st.floats(min_value=0, max_value=10, allow_nan=False),
)
def test_attempts_are_the_first_and_the_retries(retries: int, backoff: float) -> None:
    attempts = Attempts(RetryPolicy(retries=retries, backoff=backoff))
    pauses = []
    while isinstance(step := attempts.failed(LOST), Resend):
        pauses.append(step.pause)
    assert len(pauses) == max(0, retries) == attempts.sent - 1
    assert pauses == [backoff * 2**k for k in range(len(pauses))]


def test_a_retry_verdict_reads_as_a_failure() -> None:
    busy = ServiceUnavailable("busy", code=TrackerErrorCode.SERVICE_UNAVAILABLE, reason="busy")
    assert Failure.of_retry(Retry(busy), TRACKER) == Failure(
        FailureKind.BUSY, "tracker 127.0.0.1:7000 is unavailable (busy)"
    )
    other = InvalidAnswer("tracker 127.0.0.1:7000 answered transaction '7' instead of '100'")
    assert Failure.of_retry(Retry(other), TRACKER) == Failure(FailureKind.INVALID, str(other))


# -- answers ---------------------------------------------------------------------------------------


def test_statuses_outside_the_protocol_are_failed_attempts() -> None:
    assert all(status_problem(status, "x") is None for status in PROTOCOL_STATUSES)
    problem = status_problem(502, "Bad Gateway")
    assert isinstance(problem, InvalidAnswer)
    assert str(problem) == "tracker answered HTTP 502 Bad Gateway"
    assert str(status_problem(302, "")) == "tracker answered HTTP 302"


def _decode(answer: TrackerResponse | ErrorResponse) -> Decoder:
    return lambda data, status, reason: answer


def _undecodable(data: bytes, status: int, reason: str) -> TrackerResponse | ErrorResponse:
    raise BadRequest("no XML here", code=TrackerErrorCode.BAD_REQUEST)


def _read(decode: Decoder, status: int) -> Taken | NotTaken:
    return read_answer(
        decode, b"body", status, "Reason", challenge=None, tracker=TRACKER, token_sent=False
    )


def test_an_answer_of_the_protocol_is_taken() -> None:
    ok = TrackerResponse(version=V11, transaction_id="1")
    assert _read(_decode(ok), 200) == Taken(ok)
    refusal = ErrorResponse(version=V11, transaction_id="1", code=TrackerErrorCode.FORBIDDEN)
    assert _read(_decode(refusal), 403) == Taken(refusal)  # the session judges refusals


def test_an_unreadable_answer_is_a_failed_attempt() -> None:
    reading = _read(_undecodable, 200)
    assert isinstance(reading, NotTaken) and reading.answer is None
    assert isinstance(reading.error, InvalidAnswer)
    assert str(reading.error) == (
        "tracker 127.0.0.1:7000 sent an answer that cannot be read (HTTP 200): no XML here"
    )
    assert isinstance(reading.error.__cause__, BadRequest)


def test_a_proxys_status_is_a_failed_attempt_whatever_its_body() -> None:
    ok = TrackerResponse(version=V11, transaction_id="1")
    reading = _read(_decode(ok), 502)
    assert isinstance(reading, NotTaken) and reading.answer is None
    assert str(reading.error) == "tracker answered HTTP 502 Reason"


def test_a_401_without_a_token_asks_for_one() -> None:
    reading = _read(_undecodable, 401)  # a proxy's page: no body to read
    assert isinstance(reading, NotTaken) and isinstance(reading.error, AuthenticationRequired)
    assert str(reading.error) == f"tracker {TRACKER} requires a token: {TOKEN_HINT}"
    assert reading.error.reason == "token required"


def test_a_401_with_a_token_says_why_it_was_refused() -> None:
    def refused(challenge: str | None, reason: str | None) -> str:
        answer = ErrorResponse(
            version=V11,
            transaction_id="9",
            code=TrackerErrorCode.AUTHENTICATION_REQUIRED,
            reason=reason,
        )
        error = authentication_failure(TRACKER, token_sent=True, challenge=challenge, answer=answer)
        assert error.transaction_id == "9"
        return str(error)

    prefix = f"tracker {TRACKER} refused the token: "
    both = 'Bearer error="invalid_token", error_description="token expired"'
    assert refused(both, "Token expired at noon") == prefix + "token expired"
    assert refused('Bearer error="invalid_token"', None) == prefix + "invalid_token"
    assert refused("Bearer", "Token expired at noon") == prefix + "Token expired at noon"
    assert refused(None, "Unauthorized") == prefix + "invalid token"  # only repeats the status
    assert refused('Bearer error_description="a\nb\x00c"', None) == prefix + "a b c"


@given(
    data=st.binary(max_size=300),
    status=st.integers(min_value=100, max_value=599),
    reason=st.text(max_size=40),
)
@pytest.mark.parametrize("codec", [tracker_xml, tracker_json])
def test_any_answer_is_read_without_error(
    codec: TrackerCodec, data: bytes, status: int, reason: str
) -> None:
    """Hostile answers are normal: whatever the bytes and status, a reading comes back."""
    reading = read_answer(
        codec.decode_response,
        data,
        status,
        reason,
        challenge=None,
        tracker=TRACKER,
        token_sent=True,
    )
    assert isinstance(reading, Taken | NotTaken)
