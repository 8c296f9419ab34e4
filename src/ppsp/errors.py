"""One exception hierarchy for the whole project.

Every protocol error carries the code it has on the wire, as h2 and aioquic do: the tracker
protocol's RFC 7846 ``error_code`` (01-06) and the HTTP status the XML drafts use, or the peer
protocol's Table 2 response phrase and HTTP status.

``RemoteProtocolError`` means *the other side sent something invalid*; ``LocalProtocolError``
means *we were asked to do something the protocol does not allow* (the split h11 and wsproto
make).  Codecs raise the remote kind when decoding and the local kind when encoding.
"""

from __future__ import annotations

from enum import IntEnum


class PPSPError(Exception):
    """Base class of every error raised by ppsp."""


class TrackerErrorCode(IntEnum):
    """PPSP-TP error codes: RFC 7846 section 4.3 plus the XML drafts' extra HTTP statuses.

    Values 1-6 are the JSON ``error_code`` registry (RFC 7846 section 8.4).  The XML drafts
    signal errors by HTTP status only; codes 404 and 413 exist there and have no JSON code of
    their own (JSON answers them with ``error_code`` 1, bad request, see docs/PROTOCOL.md).
    """

    BAD_REQUEST = 1
    UNSUPPORTED_VERSION = 2
    FORBIDDEN = 3
    INTERNAL_ERROR = 4
    SERVICE_UNAVAILABLE = 5
    AUTHENTICATION_REQUIRED = 6
    NOT_FOUND = 404
    PAYLOAD_TOO_LARGE = 413

    @property
    def http_status(self) -> int:
        """The HTTP status code that carries this error in the XML encoding."""
        return _HTTP_STATUS[self]

    @property
    def json_code(self) -> int:
        """The RFC 7846 ``error_code`` that carries this error in the JSON encoding."""
        return int(self) if int(self) <= 6 else int(TrackerErrorCode.BAD_REQUEST)

    @property
    def reason(self) -> str:
        """A short human-readable reason phrase."""
        return _REASON[self]


_HTTP_STATUS: dict[TrackerErrorCode, int] = {
    TrackerErrorCode.BAD_REQUEST: 400,
    TrackerErrorCode.UNSUPPORTED_VERSION: 400,
    TrackerErrorCode.FORBIDDEN: 403,
    TrackerErrorCode.INTERNAL_ERROR: 500,
    TrackerErrorCode.SERVICE_UNAVAILABLE: 503,
    TrackerErrorCode.AUTHENTICATION_REQUIRED: 401,
    TrackerErrorCode.NOT_FOUND: 404,
    TrackerErrorCode.PAYLOAD_TOO_LARGE: 413,
}

_REASON: dict[TrackerErrorCode, str] = {
    TrackerErrorCode.BAD_REQUEST: "Bad Request",
    TrackerErrorCode.UNSUPPORTED_VERSION: "Unsupported Version Number",
    TrackerErrorCode.FORBIDDEN: "Forbidden",
    TrackerErrorCode.INTERNAL_ERROR: "Internal Server Error",
    TrackerErrorCode.SERVICE_UNAVAILABLE: "Service Unavailable",
    TrackerErrorCode.AUTHENTICATION_REQUIRED: "Authentication Required",
    TrackerErrorCode.NOT_FOUND: "Not Found",
    TrackerErrorCode.PAYLOAD_TOO_LARGE: "Payload Too Large",
}


class TrackerProtocolError(PPSPError):
    """A PPSP-TP error with its wire code.

    ``transaction_id`` is set when the failing message's transaction ID is known, so that the
    error answer can echo it.  ``reason`` becomes the HTTP reason phrase in the XML encoding
    (for example ``PPSP version 1.0`` from a 1.0-only tracker).
    """

    code: TrackerErrorCode = TrackerErrorCode.BAD_REQUEST

    def __init__(
        self,
        message: str = "",
        *,
        code: TrackerErrorCode | None = None,
        transaction_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message or (code or self.code).reason)
        if code is not None:
            self.code = code
        self.transaction_id = transaction_id
        self.reason = reason or self.code.reason

    @property
    def http_status(self) -> int:
        """HTTP status of this error in the XML encoding."""
        return self.code.http_status


class RemoteTrackerError(TrackerProtocolError):
    """The other side sent an invalid tracker message (decode-time error)."""


class BadRequest(RemoteTrackerError):
    """Malformed, truncated, mistyped or semantically invalid message (code 01, HTTP 400)."""

    code = TrackerErrorCode.BAD_REQUEST


class UnsupportedVersion(RemoteTrackerError):
    """A protocol version this endpoint does not speak (code 02, HTTP 400)."""

    code = TrackerErrorCode.UNSUPPORTED_VERSION


class PayloadTooLarge(RemoteTrackerError):
    """A body over the configured bound (HTTP 413; JSON code 01)."""

    code = TrackerErrorCode.PAYLOAD_TOO_LARGE


class Forbidden(TrackerProtocolError):
    """A request not allowed in the peer's current state (code 03, HTTP 403)."""

    code = TrackerErrorCode.FORBIDDEN


class NotFound(TrackerProtocolError):
    """An unknown swarm or peer where one must exist (HTTP 404; JSON code 01)."""

    code = TrackerErrorCode.NOT_FOUND


class InternalError(TrackerProtocolError):
    """An unexpected condition inside the tracker (code 04, HTTP 500)."""

    code = TrackerErrorCode.INTERNAL_ERROR


class ServiceUnavailable(TrackerProtocolError):
    """The tracker is overloaded or its storage is unreachable (code 05, HTTP 503)."""

    code = TrackerErrorCode.SERVICE_UNAVAILABLE


class AuthenticationRequired(TrackerProtocolError):
    """The request lacks valid credentials (code 06, HTTP 401)."""

    code = TrackerErrorCode.AUTHENTICATION_REQUIRED


class BearerTokenError(AuthenticationRequired):
    """A request without a usable bearer token: none, malformed, expired or badly signed.

    ``missing`` is true when the request presented no bearer token at all (RFC 6750 section
    3.1: the challenge then names no error); the message says what is wrong with the token.
    """

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class KeyFileError(PPSPError, ValueError):
    """A key or certificate file that cannot be read or holds no usable key (one-line message)."""


class LocalProtocolError(PPSPError):
    """We were asked to build or send something the protocol does not allow."""


class TrackerUnreachable(PPSPError):
    """The tracker could not be reached or gave no valid answer after all retries."""


class ContentError(PPSPError):
    """A problem with content: its description, a chunk's integrity or its storage."""


class InvalidDescription(ContentError):
    """A content description that is malformed, out of bounds or not in canonical form."""


class IntegrityError(ContentError):
    """Bytes that do not match the hash that certifies them (chunk, hash list or swarm ID)."""


class ChunkUnavailable(ContentError, LookupError):
    """A chunk or representation that does not exist, or a chunk that is not held."""


class ChunkChanged(ChunkUnavailable):
    """A seeded file changed on disk and this chunk no longer matches its hash."""


class HashingCancelled(ContentError):
    """Describing a file was given up before its end (a stopping command asked so)."""


class HttpClientError(PPSPError, ConnectionError):
    """An HTTP exchange (:mod:`ppsp.http.client`) that failed below the application: no
    connection, no answer or no whole answer, a malformed answer, a TLS failure, a timeout.

    Each is a ConnectionError (an OSError), so that what catches the operating system's own
    errors catches these too.  ``os_error`` is the operating system's or TLS library's error
    behind it, when there is one.
    """

    def __init__(self, message: str, *, os_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.os_error = os_error


class InvalidURL(HttpClientError, ValueError):
    """A URL the HTTP client cannot ask: not ``http://`` or ``https://``, no host, a bad port,
    a host that is not a name or an address (URLs from other peers are untrusted)."""


class HttpConnectError(HttpClientError):
    """No connection could be opened: refused, unreachable (``os_error`` says which)."""


class HttpNameError(HttpConnectError):
    """The server's name could not be resolved (``os_error`` is the ``socket.gaierror``)."""


class HttpTLSError(HttpClientError):
    """The TLS handshake failed (``os_error`` is the ``ssl.SSLError``)."""


class HttpCertificateError(HttpTLSError):
    """The server's certificate did not verify (``os_error`` is the
    ``ssl.SSLCertVerificationError`` or ``ssl.CertificateError``)."""

    @property
    def certificate_error(self) -> BaseException | None:
        """The TLS library's verification error."""
        return self.os_error


class HttpTimeout(HttpClientError, TimeoutError):
    """An HTTP exchange that ran out of time: opening the connection, a wait for bytes, or the
    whole exchange.  A TimeoutError too: callers that tell silence from failure catch that."""


class HttpDisconnected(HttpClientError):
    """The server closed (or reset) the connection before its answer's head was whole.

    ``no_answer`` is True when not one byte of an answer came: on a kept-alive connection,
    the server may have closed it just as the request was sent.
    """

    def __init__(
        self, message: str, *, os_error: BaseException | None = None, no_answer: bool = False
    ) -> None:
        super().__init__(message, os_error=os_error)
        self.no_answer = no_answer


class IncompleteBody(HttpClientError):
    """The connection ended inside an answer's body (fewer bytes than announced, a chunked
    body without its last chunk)."""


class BodyTooLarge(HttpClientError):
    """An HTTP body exceeded the bound set for it."""


class ChunkTransferError(PPSPError, ConnectionError):
    """A peer's answer to a chunk request that cannot be used: an error status, a cut body."""


class PeerBusy(ChunkTransferError):
    """A peer answered a chunk request 503 or 429: it serves others first and asks to be asked
    again later (``retry_after`` seconds, when it said; None otherwise).  Not a fault."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MalformedResponse(ChunkTransferError, HttpClientError):
    """An HTTP response head that is not well formed, or that frames its body ambiguously, or
    a body in the chunked coding that is not (one of the HTTP client's errors too)."""


class HTTPRequestError(PPSPError):
    """An HTTP request a server cannot serve as sent, with the status to answer it with.

    Raised by the request head parser (:func:`ppsp.codecs.httphead.parse_request_head`) and by
    the peer's HTTP server (:mod:`ppsp.http.server`) while it reads a request; the server
    answers ``status`` with ``reason`` and closes the connection (RFC 9112 framing is no longer
    trusted after any of these).
    """

    status: int = 400
    reason: str = "Bad Request"


class MalformedRequest(HTTPRequestError):
    """A request head that is not well formed, or frames its body ambiguously (400)."""


class RequestTimeout(HTTPRequestError, TimeoutError):
    """A request head or body that did not arrive in time (408)."""

    status = 408
    reason = "Request Timeout"


class RequestBodyTooLarge(HTTPRequestError):
    """A request body over the bound its handler (or the server) sets (413)."""

    status = 413
    reason = "Content Too Large"


class RequestTargetTooLong(HTTPRequestError):
    """A request line over :data:`~ppsp.wire.fields.MAX_REQUEST_LINE_BYTES` (414)."""

    status = 414
    reason = "URI Too Long"


class RequestHeadTooLarge(HTTPRequestError):
    """A request head over the head bounds of :mod:`ppsp.wire.fields` (431)."""

    status = 431
    reason = "Request Header Fields Too Large"


class RequestNotImplemented(HTTPRequestError):
    """A request the server does not implement: a transfer coding on its body (501)."""

    status = 501
    reason = "Not Implemented"


class HTTPVersionNotSupported(HTTPRequestError):
    """A request in a major HTTP version other than 1 (505)."""

    status = 505
    reason = "HTTP Version Not Supported"


class PeerProtocolError(PPSPError):
    """A PPSP peer protocol (PPSP-PP) error with its wire form (draft-gu-...-02, Table 2).

    ``status`` is the HTTP status and ``response`` the ``<Response>`` phrase of the error answer;
    each subclass fixes both as class attributes, the way h2 and aioquic carry wire codes.
    ``transaction_id`` is set when the failing message's transaction ID is known, so that the
    error answer can echo it.
    """

    status: int = 400
    response: str = "INVALID SYNTAX"

    def __init__(self, message: str = "", *, transaction_id: str | None = None) -> None:
        super().__init__(message or self.response)
        self.transaction_id = transaction_id


class RemotePeerError(PeerProtocolError):
    """The other side sent an invalid peer protocol message (decode-time error)."""


class InvalidSyntax(RemotePeerError):
    """Malformed, oversized, hostile or semantically invalid message (400 ``INVALID SYNTAX``)."""

    status = 400
    response = "INVALID SYNTAX"


class VersionNotSupported(RemotePeerError):
    """A peer protocol version this peer does not speak (400 ``VERSION NOT SUPPORTED``)."""

    status = 400
    response = "VERSION NOT SUPPORTED"


class MessageNotSupported(RemotePeerError):
    """A method this peer does not implement (403 ``MESSAGE NOT SUPPORTED``, as in Table 2)."""

    status = 403
    response = "MESSAGE NOT SUPPORTED"


class TemporarilyOverloaded(PeerProtocolError):
    """The peer cannot process the request now (503 ``TEMPORARILY OVERLOADED``)."""

    status = 503
    response = "TEMPORARILY OVERLOADED"


class PeerInternalError(PeerProtocolError):
    """An unexpected condition inside the answering peer (500 ``INTERNAL ERROR``)."""

    status = 500
    response = "INTERNAL ERROR"


class MessageForbidden(PeerProtocolError):
    """The requester is not allowed to make this request (403 ``MESSAGE FORBIDDEN``)."""

    status = 403
    response = "MESSAGE FORBIDDEN"


class ObjectNotFound(PeerProtocolError):
    """Unknown swarm, no peer or chunk found, or no common transport (404 ``OBJECT NOT FOUND``)."""

    status = 404
    response = "OBJECT NOT FOUND"


class PeerAuthenticationRequired(PeerProtocolError):
    """The request lacks valid credentials (401 ``AUTHENTICATION REQUIRED``)."""

    status = 401
    response = "AUTHENTICATION REQUIRED"


PEER_ERROR_CLASSES: dict[str, type[PeerProtocolError]] = {
    cls.response: cls
    for cls in (
        InvalidSyntax,
        VersionNotSupported,
        MessageNotSupported,
        TemporarilyOverloaded,
        PeerInternalError,
        MessageForbidden,
        ObjectNotFound,
        PeerAuthenticationRequired,
    )
}
"""Every error row of Table 2, keyed by its ``<Response>`` phrase."""


class PPSPPError(PPSPError):
    """An RFC 7574 peer protocol (PPSPP, UDP) datagram that cannot be used.

    PPSPP has no error message on the wire: a peer drops such a datagram or closes the channel
    (a HANDSHAKE with source channel 0).  ``code`` names the failure in a word, for logs and
    counters: ``truncated``, ``oversized``, ``malformed`` or ``unsupported``.
    """

    code: str = "malformed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class MalformedDatagram(PPSPPError):
    """The other side sent a PPSPP datagram that does not parse (decode-time error)."""


class TooManyMessages(MalformedDatagram):
    """A PPSPP datagram carrying more messages than its reader allows (code ``oversized``).

    The codec raises it as the first message beyond the bound begins, before reading it:
    ``messages`` holds those read until then (as many as the bound, PPSPP messages of
    :mod:`ppsp.wire.ppspp`), so that a caller may still look at the first one (an opening
    datagram's HANDSHAKE) and refuse the datagram for the reason it would have given
    had it read the whole.
    """

    code = "oversized"

    def __init__(self, message: str, *, messages: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.messages = messages


class LiveError(ContentError):
    """A problem with a live stream: its key, description, or a live chunk."""


class InvalidEnvelope(LiveError):
    """A live chunk envelope that is malformed, truncated or over the size bounds."""


class ForgedChunk(LiveError, IntegrityError):
    """A live chunk whose signature does not verify: forged, altered, or of another swarm."""


class StaleChunk(LiveError):
    """A live chunk older than the live window (below its floor, or too old): a replay."""


class FutureChunk(LiveError):
    """A live chunk further ahead than the source can have produced by now."""


class DashboardRequestError(PPSPError):
    """A request to the tracker's dashboard API that cannot be answered as asked: a malformed
    query or swarm ID (400), with the HTTP status to answer with and a one-line message."""

    status: int = 400


class DashboardNotFound(DashboardRequestError):
    """A dashboard API request for a swarm the tracker does not have (404)."""

    status = 404


class StunError(PPSPError):
    """A STUN exchange (RFC 8489) that gave no reflexive address: a malformed message, an
    error answer, or no answer within the retransmissions.  ``code`` is the STUN error code
    the failure maps to (400 for a malformed message)."""

    code: int = 400


class StunFormatError(StunError, ValueError):
    """Bytes that are not a well-formed STUN message (decode-time), or a message that cannot
    be written (encode-time)."""


class StunTimeout(StunError, TimeoutError):
    """No answer from the STUN server within the retransmissions (RFC 8489 section 6.2.1)."""

    code = 408
