"""The tracker client's trust and words: tracker URLs, TLS settings, tokens, failed attempts.

The parts of :mod:`ppsp.tracker.net.client` that check what a user gives before any network
(:func:`check_tracker_url`, :func:`tls_context`, :func:`check_token`, :func:`token_subject`)
and word what went wrong in an attempt (:func:`failure_of`: one sentence from an HTTP client
(:class:`~ppsp.errors.HttpClientError`) or operating-system error, ``tracker 127.0.0.1:7999
refused the connection``, ``tracker 127.0.0.1:7443: certificate verify failed: self-signed
certificate ...``).  Whether a failure is retried is decided by
:mod:`ppsp.tracker.client_policy`; :mod:`ssl` and :mod:`jwt` are imported only when a TLS
context is made, a TLS failure is read, or a token is read.
"""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, quote, urlsplit

from ppsp.errors import (
    HttpCertificateError,
    HttpConnectError,
    HttpDisconnected,
    HttpNameError,
    HttpTLSError,
    IncompleteBody,
    MalformedResponse,
    PPSPError,
)
from ppsp.tracker.client_policy import Failure, FailureKind, one_line
from ppsp.tracker.client_session import InvalidAnswer
from ppsp.wire.fields import is_token

if TYPE_CHECKING:
    import ssl

__all__ = [
    "InvalidToken",
    "InvalidTrackerURL",
    "InvalidTrustAnchors",
    "check_token",
    "check_tracker_url",
    "failure_of",
    "tls_context",
    "token_subject",
    "token_swarms",
    "tracker_name",
]

_SCHEMES = ("http", "https")

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 section 2.1 ``b64token``: what may follow ``Bearer`` in the header (a JWT fits)."""


# -- what a user gives -----------------------------------------------------------------------


class InvalidTrackerURL(PPSPError, ValueError):
    """A tracker URL the client cannot use: no ``http://`` or ``https://``, no host, a bad port.

    Both a :class:`~ppsp.errors.PPSPError` and a ValueError; its message is one line.
    """


def check_tracker_url(url: str) -> str:
    """``url`` checked and normalised for use as a tracker URL; raises :class:`InvalidTrackerURL`
    (a ValueError) with a one-line message otherwise.

    The URL needs the scheme ``http`` or ``https`` and a host; a port, if given, is 1-65535.
    Surrounding whitespace is dropped, and the scheme and host are written in lower case.  No
    name is resolved and nothing is sent.
    """
    if not isinstance(url, str):
        raise InvalidTrackerURL(f"the tracker URL must be text, not {type(url).__name__}")
    text = url.strip()
    shown = repr(text[:80])
    if not text:
        raise InvalidTrackerURL("the tracker URL is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise InvalidTrackerURL(f"tracker URL {shown} contains spaces or control characters")
    try:
        parsed = urlsplit(text)
        port = parsed.port
        host = _normal_host(parsed.hostname or "")
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidTrackerURL(f"tracker URL {shown} is not a valid URL ({exc})") from None
    scheme = parsed.scheme.lower()
    if scheme not in _SCHEMES:
        if "://" not in text:  # "localhost:7000" reads as the scheme "localhost"
            raise InvalidTrackerURL(
                f"tracker URL {shown} has no scheme: write it as http://{text.lstrip('/')}"
                " (or https://)"
            )
        raise InvalidTrackerURL(
            f"tracker URL {shown} uses the scheme {scheme}: only http:// and https:// work"
        )
    if not host:
        raise InvalidTrackerURL(f"tracker URL {shown} names no host")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidTrackerURL(f"tracker URL {shown} has port {port}, not 1-65535")
    return _normalised(parsed, scheme, host, port)


_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def _normal_host(host: str) -> str:
    """``host`` (a name or an address, lower case) as written in a URL: a non-ASCII name in
    its IDNA form."""
    return host if host.isascii() else host.encode("idna").decode("ascii")


def _normalised(parsed: SplitResult, scheme: str, host: str, port: int | None) -> str:
    """The URL in normal form: scheme and host in lower case, the scheme's own port and the
    fragment dropped, path and query percent-encoded where they need it."""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = parsed.path
    if not path and (parsed.query or parsed.path):
        path = "/"
    url = f"{scheme}://{netloc}{_quote(path)}"
    if parsed.query:
        url += "?" + _quote(parsed.query, "?")
    return url


def _quote(text: str, more_safe: str = "") -> str:
    return quote(text, safe=_PATH_SAFE + more_safe)


class InvalidTrustAnchors(PPSPError, ValueError):
    """A CA file that cannot be used as trust anchors (missing, unreadable, no certificate)."""


class InvalidToken(PPSPError, ValueError):
    """A bearer token the client cannot send or read: not a JWT, no subject, bad characters."""


def tls_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """The TLS settings for ``https://`` trackers: the system's trust store, TLS 1.2 or later,
    and, with ``ca_file``, the certificates of that PEM file as extra trust anchors.

    Raises :class:`InvalidTrustAnchors` (a ValueError) with a one-line message when the file
    cannot be read or holds no certificate.
    """
    import ssl  # only for https:// trackers

    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is None:
        return context
    path = Path(ca_file)
    if path.is_dir():
        raise InvalidTrustAnchors(f"CA file {path} is a directory: give a PEM file")
    try:
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:  # an SSLError is an OSError: first
        raise InvalidTrustAnchors(
            f"CA file {path} holds no usable PEM certificate ({_ssl_words(exc)})"
        ) from None
    except OSError as exc:
        raise InvalidTrustAnchors(f"CA file {path}: {_os_reason(exc)}") from None
    return context


def check_token(token: str) -> str:
    """``token`` if it can be sent as a bearer token (RFC 6750 ``b64token``, which every JWT is);
    raises :class:`InvalidToken` (a ValueError) with a one-line message otherwise."""
    text = token.strip()
    if not text:
        raise InvalidToken("the token is empty")
    if not _B64TOKEN.fullmatch(text):
        raise InvalidToken(
            "the token contains characters a bearer token cannot (spaces, quotes, controls)"
        )
    return text


def token_subject(token: str) -> str:
    """The PeerID ``token`` was issued for: its ``sub`` claim, read without verifying it.

    A peer cannot verify its own token (it has no key for that) and does not need to: the
    tracker does.  Raises :class:`InvalidToken` (a ValueError) with a one-line message when the
    token is not a JWT, names no subject, or names one that is not a PeerID.
    """
    import jwt  # PyJWT: imported here, only peers with a token pay for it

    text = check_token(token)
    try:
        claims = jwt.decode(text, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token is not a JWT ({one_line(str(exc))})") from None
    subject = claims.get("sub")
    if subject is None:
        raise InvalidToken("the token names no PeerID (it has no 'sub' claim)")
    if not isinstance(subject, str) or not is_token(subject):
        raise InvalidToken(
            "the token's subject is not a PeerID (1 to 256 characters, no spaces or controls)"
        )
    return subject


def token_swarms(token: str) -> frozenset[str] | None:
    """The swarms a JWT's ``swarms`` claim lists (read without verifying, only to explain a
    refusal); None when it has no such list or is no JWT (an opaque token)."""
    import jwt

    try:
        listed = jwt.decode(token, options={"verify_signature": False}).get("swarms")
    except jwt.PyJWTError:
        return None
    if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
        return None
    return frozenset(listed)


# -- what went wrong -------------------------------------------------------------------------


def tracker_name(url: str, *, with_port: bool = True) -> str:
    """How messages name the tracker of ``url``: its host, and the port the URL gives."""
    try:
        parsed = urlsplit(url)
        host = parsed.hostname or url
        port = parsed.port
    except ValueError:
        return url
    if "xn--" in host:  # a name in its IDNA form is shown as its user wrote it
        with contextlib.suppress(UnicodeError):
            host = host.encode("ascii").decode("idna")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if with_port and port is not None else host


def failure_of(exc: BaseException | None, url: str, timeout: float) -> Failure:
    """The failure of an attempt to reach the tracker at ``url``: ``exc`` (None: no answer)
    in one sentence for the user, and its kind (a TLS failure is never retried).  ``timeout``
    is the time the attempt was allowed."""
    if isinstance(exc, HttpTLSError):
        # A certificate or handshake failure (HttpCertificateError is one too).
        return Failure(FailureKind.TLS, _sentence(exc, url, timeout))
    if isinstance(exc, InvalidAnswer):
        return Failure(FailureKind.INVALID, str(exc))
    return Failure(FailureKind.LOST, _sentence(exc, url, timeout))


def _sentence(exc: BaseException | None, url: str, timeout: float) -> str:
    """One sentence saying what ``exc``, the failure of an attempt, means for the user."""
    where = tracker_name(url)
    if isinstance(exc, TimeoutError):  # the HTTP client's timeouts are TimeoutErrors too
        return f"tracker {where} did not answer within {timeout:g} s"
    if isinstance(exc, HttpNameError) or (
        isinstance(exc, HttpConnectError) and isinstance(exc.os_error, socket.gaierror)
    ):
        return f"tracker {tracker_name(url, with_port=False)}: name not found"
    if isinstance(exc, HttpCertificateError):
        return f"tracker {where}: {_certificate_problem(exc.certificate_error)}"
    if isinstance(exc, HttpTLSError):
        return f"tracker {where}: {_handshake_problem(exc)}"
    if isinstance(exc, HttpConnectError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"tracker {where} refused the connection"
        error = exc.os_error if isinstance(exc.os_error, OSError) else None
        return f"tracker {where} could not be reached: {_os_reason(error)}"
    if isinstance(exc, HttpDisconnected):
        if isinstance(exc.os_error, ConnectionResetError):
            return f"tracker {where} reset the connection"
        return f"tracker {where} closed the connection without answering"
    if isinstance(exc, IncompleteBody):
        return f"tracker {where} sent an incomplete answer"
    if isinstance(exc, MalformedResponse):
        return f"tracker {where} sent a malformed HTTP answer ({one_line(str(exc), 120)})"
    if isinstance(exc, OSError):
        if isinstance(exc, ConnectionResetError):
            return f"tracker {where} reset the connection"
        return f"tracker {where}: {_os_reason(exc)}"
    text = str(exc).splitlines()[0] if exc is not None and str(exc) else ""
    kind = "no answer" if exc is None else type(exc).__name__
    return f"tracker {where}: {kind}" + (f" ({text[:120]})" if text else "")


def _ssl_words(exc: BaseException) -> str:
    """What an ssl error says, without OpenSSL's bracketed prefix and source location."""
    text = (
        exc.strerror
        if isinstance(exc, OSError) and isinstance(exc.strerror, str) and exc.strerror
        else str(exc)
    )
    text = re.sub(r"^\[[A-Z0-9_: ]+\]\s*", "", text)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)
    return one_line(text, 160) or type(exc).__name__


_UNTRUSTED_ISSUER_CODES = frozenset({2, 18, 19, 20, 21})
"""OpenSSL verify codes meaning "nothing in the trust store vouches for this certificate":
unable to get the issuer, self-signed leaf, self-signed in chain, no local issuer, unable to
verify the first certificate."""


def _certificate_problem(error: BaseException | None) -> str:
    """``certificate verify failed: <OpenSSL's words>``, with a hint when a CA file would help."""
    import ssl

    if isinstance(error, ssl.SSLCertVerificationError):
        words = one_line(error.verify_message or "", 160) or _ssl_words(error)
        hint = ""
        if error.verify_code in _UNTRUSTED_ISSUER_CODES:
            hint = " (give --ca-file with the certificate of the CA that issued it)"
        return f"certificate verify failed: {words}{hint}"
    if isinstance(error, ssl.CertificateError):
        return f"certificate verify failed: {_ssl_words(error)}"
    if error is None:
        return "certificate not accepted"
    return f"certificate not accepted: {_ssl_words(error)}"


def _handshake_problem(exc: BaseException) -> str:
    """What a failed TLS handshake means: most often, no TLS at all on the other end."""
    import ssl

    error = exc.os_error if isinstance(exc, HttpTLSError) else exc
    reason = getattr(error, "reason", None) if isinstance(error, ssl.SSLError) else None
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        return "TLS handshake failed: it does not speak TLS (write its URL with http://?)"
    return f"TLS handshake failed: {_ssl_words(error if error is not None else exc)}"


def _os_reason(error: OSError | None) -> str:
    """The words of an operating-system error, without its number."""
    if error is None:
        return "connection failed"
    return (error.strerror or str(error) or type(error).__name__).splitlines()[0][:120]
