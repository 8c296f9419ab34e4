"""Bearer tokens: keys, issuing and checking (auth.py), and the tracker's 401 answers over HTTP."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ppsp.codecs.tracker import codec_for
from ppsp.errors import BearerTokenError, KeyFileError, TrackerErrorCode
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.credentials import Credentials
from ppsp.tracker.net import auth
from ppsp.tracker.net.auth import (
    TokenVerifier,
    bearer_challenge,
    bearer_token,
    generate_key_pair,
    issue_token,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    verify_token,
    write_key_pair,
)
from ppsp.tracker.net.server import ServerSettings, running_tracker
from ppsp.wire.tracker import (
    ConnectRequest,
    Encoding,
    ErrorResponse,
    ProtocolVersion,
    TrackerResponse,
)

V11 = ProtocolVersion.V1_1
NOW = 1_800_000_000.0
PRIVATE, PUBLIC = generate_key_pair()


# -- keys -------------------------------------------------------------------------------------


def test_a_key_pair_is_written_private_key_owner_only(tmp_path: Path) -> None:
    os.umask(0o022)
    key = write_key_pair(tmp_path / "key.pem", tmp_path / "key.pub.pem")
    mode = stat.S_IMODE((tmp_path / "key.pem").stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "key.pub.pem").stat().st_mode) == 0o644
    loaded = load_private_key(tmp_path / "key.pem")
    assert private_key_pem(loaded) == private_key_pem(key)
    (public,) = load_public_key(tmp_path / "key.pub.pem")
    assert public_key_pem(public) == public_key_pem(key.public_key())
    # Never overwritten.
    with pytest.raises(KeyFileError, match="exists already"):
        write_key_pair(tmp_path / "key.pem", tmp_path / "other.pub.pem")
    assert not (tmp_path / "other.pub.pem").exists()


def test_keys_made_by_openssl_style_pem_are_read(tmp_path: Path) -> None:
    # The formats `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write.
    (tmp_path / "priv.pem").write_bytes(private_key_pem(PRIVATE))
    (tmp_path / "pub.pem").write_bytes(public_key_pem(PUBLIC))
    assert public_key_pem(load_private_key(tmp_path / "priv.pem").public_key()) == (
        public_key_pem(PUBLIC)
    )
    assert [public_key_pem(k) for k in load_public_key(tmp_path / "pub.pem")] == [
        public_key_pem(PUBLIC)
    ]


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, public: bool = False) -> bytes:
    if public:
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("content", "loader", "message"),
    [
        (None, load_private_key, "no private key file"),
        (None, load_public_key, "no public key file"),
        (b"hello", load_public_key, "not a PEM file"),
        (
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            load_public_key,
            "no public key that can be read",
        ),
        (public_key_pem(PUBLIC), load_private_key, "holds a public key"),
        (private_key_pem(PRIVATE), load_public_key, "holds a private key"),
        (_pem(ec.generate_private_key(ec.SECP256R1())), load_private_key, "holds an EC key"),
        (
            _pem(ec.generate_private_key(ec.SECP256R1()), public=True),
            load_public_key,
            "need an Ed25519 key",
        ),
        (
            PRIVATE.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            load_private_key,
            "encrypted",
        ),
    ],
)
def test_key_errors_are_one_line(
    tmp_path: Path, content: bytes | None, loader: object, message: str
) -> None:
    path = tmp_path / "key.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError, match=message) as caught:
        loader(path)  # type: ignore[operator]
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_directory_is_no_key(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="directory"):
        load_public_key(tmp_path)


# -- tokens -----------------------------------------------------------------------------------


def test_issue_and_verify() -> None:
    token = issue_token(PRIVATE, "peer-1", ttl=3600, now=NOW)
    assert verify_token(token, PUBLIC, now=NOW + 10) == Credentials(
        subject="peer-1", swarms=None, expires=NOW + 3600
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"sub": "peer-1", "iat": int(NOW), "exp": int(NOW + 3600)}
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"

    private = issue_token(PRIVATE, "peer-2", swarms=["s1", "s2", "s1"], ttl=60, now=NOW)
    credentials = verify_token(private, PUBLIC, now=NOW)
    assert credentials.swarms == frozenset({"s1", "s2"})
    assert jwt.decode(private, options={"verify_signature": False})["swarms"] == ["s1", "s2"]
    empty = issue_token(PRIVATE, "peer-3", swarms=[], ttl=60, now=NOW)
    assert verify_token(empty, PUBLIC, now=NOW).swarms == frozenset()


def test_an_operator_token_carries_its_role() -> None:
    token = issue_token(PRIVATE, "alice", ttl=60, now=NOW, role=auth.OPERATOR_ROLE)
    assert jwt.decode(token, options={"verify_signature": False})["role"] == "operator"
    credentials = verify_token(token, PUBLIC, now=NOW)
    assert credentials.role == "operator" and credentials.operator
    assert credentials.subject == "alice"
    plain = verify_token(issue_token(PRIVATE, "peer", ttl=60, now=NOW), PUBLIC, now=NOW)
    assert plain.role is None and not plain.operator
    other = verify_token(issue_token(PRIVATE, "p", ttl=60, now=NOW, role="viewer"), PUBLIC, now=NOW)
    assert other.role == "viewer" and not other.operator


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peer_id": ""}, "needs a PeerID"),
        ({"ttl": 0}, "positive"),
        ({"ttl": float("inf")}, "positive"),
        ({"swarms": ["ok", ""]}, "cannot be empty"),
        ({"role": ""}, "role cannot be empty"),
    ],
)
def test_issue_refuses(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"peer_id": "p", "ttl": 60.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        issue_token(PRIVATE, now=NOW, **args)  # type: ignore[arg-type]


def _signed(claims: dict[str, object], key: object = PRIVATE, alg: str = "EdDSA") -> str:
    return jwt.encode(claims, key, algorithm=alg)  # type: ignore[arg-type]


OTHER_PRIVATE, _ = generate_key_pair()

BAD_TOKENS: dict[str, tuple[str, str]] = {
    "expired": (issue_token(PRIVATE, "p", ttl=60, now=NOW - 3600), "expired"),
    "other key": (issue_token(OTHER_PRIVATE, "p", ttl=60, now=NOW), "signature"),
    "hmac": (_signed({"sub": "p", "exp": NOW + 60}, "s" * 32, "HS256"), "EdDSA"),
    "unsigned": (_signed({"sub": "p", "exp": NOW + 60}, None, "none"), "EdDSA"),
    "no exp": (_signed({"sub": "p"}), "no exp claim"),
    "no sub": (_signed({"exp": NOW + 60}), "no sub claim"),
    "empty sub": (_signed({"sub": "", "exp": NOW + 60}), "subject"),
    "number sub": (_signed({"sub": 5, "exp": NOW + 60}), "subject"),
    "text exp": (_signed({"sub": "p", "exp": "soon"}), "exp claim is not a time"),
    "swarms text": (_signed({"sub": "p", "exp": NOW + 60, "swarms": "s1"}), "swarms"),
    "swarms numbers": (_signed({"sub": "p", "exp": NOW + 60, "swarms": [1]}), "swarms"),
    "role number": (_signed({"sub": "p", "exp": NOW + 60, "role": 1}), "role claim"),
    "role list": (_signed({"sub": "p", "exp": NOW + 60, "role": ["operator"]}), "role claim"),
    "role empty": (_signed({"sub": "p", "exp": NOW + 60, "role": ""}), "role claim"),
    "role long": (_signed({"sub": "p", "exp": NOW + 60, "role": "o" * 65}), "role claim"),
    "future nbf": (_signed({"sub": "p", "exp": NOW + 600, "nbf": NOW + 300}), "not valid yet"),
    "future iat": (_signed({"sub": "p", "exp": NOW + 600, "iat": NOW + 300}), "future"),
    "garbage": ("abc.def.ghi", "malformed"),
    "truncated": (issue_token(PRIVATE, "p", ttl=60, now=NOW)[:-10], "signature"),
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_tokens_are_refused(name: str) -> None:
    token, message = BAD_TOKENS[name]
    with pytest.raises(BearerTokenError, match=message) as caught:
        verify_token(token, PUBLIC, now=NOW)
    assert not caught.value.missing
    assert caught.value.code is TrackerErrorCode.AUTHENTICATION_REQUIRED


BAD_TOKEN_REASONS = {
    "expired": "expired",
    "other key": "bad_signature",
    "hmac": "bad_signature",
    "unsigned": "bad_signature",
    "no exp": "bad_claims",
    "no sub": "bad_claims",
    "empty sub": "bad_claims",
    "number sub": "bad_claims",
    "text exp": "bad_claims",
    "swarms text": "bad_claims",
    "swarms numbers": "bad_claims",
    "role number": "bad_claims",
    "role list": "bad_claims",
    "role empty": "bad_claims",
    "role long": "bad_claims",
    "future nbf": "not_yet_valid",
    "future iat": "not_yet_valid",
    "garbage": "malformed",
    "truncated": "bad_signature",
}


def test_each_refusal_has_its_reason_for_the_metrics() -> None:
    assert BAD_TOKEN_REASONS.keys() == BAD_TOKENS.keys()
    for name, (token, _) in BAD_TOKENS.items():
        with pytest.raises(BearerTokenError) as caught:
            verify_token(token, PUBLIC, now=NOW)
        assert auth.refusal_reason(caught.value) == BAD_TOKEN_REASONS[name], name
    verifier = TokenVerifier(PUBLIC)
    for header, reason in [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "missing"),
        ("Bearer a b", "malformed"),
        ("Bearer abc.def", "malformed"),
    ]:
        with pytest.raises(BearerTokenError) as caught:
            verifier.check(header, NOW)
        assert auth.refusal_reason(caught.value) == reason, header


def test_a_key_file_may_hold_several_keys_and_a_token_of_any_is_taken(tmp_path: Path) -> None:
    # A key being rotated: the new public key added beside the old one.
    new_private, new_public = generate_key_pair()
    other_private, _ = generate_key_pair()
    (tmp_path / "keys.pem").write_bytes(public_key_pem(PUBLIC) + public_key_pem(new_public))
    keys = load_public_key(tmp_path / "keys.pem")
    assert [public_key_pem(k) for k in keys] == [public_key_pem(PUBLIC), public_key_pem(new_public)]
    verifier = TokenVerifier(keys)
    for private, peer in ((PRIVATE, "old"), (new_private, "new")):
        token = issue_token(private, peer, ttl=60, now=NOW)
        assert verifier.check(f"Bearer {token}", NOW).subject == peer
    # A key in neither: the signature does not verify; the second key's expired token: expired.
    with pytest.raises(BearerTokenError, match="signature"):
        verifier.check(f"Bearer {issue_token(other_private, 'x', ttl=60, now=NOW)}", NOW)
    with pytest.raises(BearerTokenError, match="expired"):
        verifier.check(f"Bearer {issue_token(new_private, 'y', ttl=60, now=NOW)}", NOW + 120)
    # Bounded, and every block must be an Ed25519 public key.
    (tmp_path / "many.pem").write_bytes(public_key_pem(PUBLIC) * (auth.MAX_PUBLIC_KEYS + 1))
    with pytest.raises(KeyFileError, match="at most"):
        load_public_key(tmp_path / "many.pem")
    rsa_public = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), public=True)
    (tmp_path / "mixed.pem").write_bytes(public_key_pem(PUBLIC) + rsa_public)
    with pytest.raises(KeyFileError, match="RSA"):
        load_public_key(tmp_path / "mixed.pem")


def test_leeway_allows_a_little_clock_difference() -> None:
    token = issue_token(PRIVATE, "p", ttl=60, now=NOW)
    verify_token(token, PUBLIC, now=NOW + 60 + 29, leeway=30)
    with pytest.raises(BearerTokenError, match="expired"):
        verify_token(token, PUBLIC, now=NOW + 60 + 31, leeway=30)


@pytest.mark.parametrize(
    ("header", "token", "missing"),
    [
        (None, None, True),
        ("Basic dXNlcjpwYXNz", None, True),
        ("Bearer", None, False),
        ("Bearer a b", None, False),
        ("Bearer tok\u00e9n", None, False),
        ("Bearer abc.DEF-_~+/==", "abc.DEF-_~+/==", False),
        ("bearer   abc", "abc", False),
    ],
)
def test_bearer_header(header: str | None, token: str | None, missing: bool) -> None:
    if token is not None:
        assert bearer_token(header) == token
        return
    with pytest.raises(BearerTokenError) as caught:
        bearer_token(header)
    assert caught.value.missing is missing


def test_challenges() -> None:
    assert bearer_challenge(None) == 'Bearer realm="ppsp"'
    assert bearer_challenge(BearerTokenError("x", missing=True)) == 'Bearer realm="ppsp"'
    assert bearer_challenge(BearerTokenError('a "quoted" \\ thing')) == (
        'Bearer realm="ppsp", error="invalid_token", error_description="a  quoted    thing"'
    )


def test_the_verifier_checks_each_token_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = auth.verify_token

    def counting(token: str, key: object, **kwargs: float) -> Credentials:
        calls.append(token)
        return real(token, key, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(auth, "verify_token", counting)
    verifier = TokenVerifier(PUBLIC, leeway=0, cache_size=4)
    token = issue_token(PRIVATE, "p", ttl=60, now=NOW)
    for _ in range(100):
        assert verifier.check(f"Bearer {token}", NOW).subject == "p"
    assert len(calls) == 1
    # Spelling the header otherwise finds the same entry: no new ones, no new checks.
    for spelling in (f"bearer {token}", f"Bearer   {token}", f"BEARER {token} "):
        assert verifier.check(spelling, NOW).subject == "p"
    assert len(calls) == 1 and len(verifier._valid) == 1
    # Not a JWS in compact form (padding, two parts): malformed, without verifying.
    for odd in (f"{token}==", "abc.def", "a.b.c.d"):
        with pytest.raises(BearerTokenError, match="malformed"):
            verifier.check(f"Bearer {odd}", NOW)
    assert len(calls) == 1
    # Kept until it expires, then refused without another look.
    with pytest.raises(BearerTokenError, match="expired"):
        verifier.check(f"Bearer {token}", NOW + 61)
    # A refused token is refused again without being verified again.
    bad = BAD_TOKENS["other key"][0]
    for _ in range(3):
        with pytest.raises(BearerTokenError, match="signature"):
            verifier.check(f"Bearer {bad}", NOW)
    assert calls.count(bad) == 1
    # Bounded: many tokens, never more than cache_size kept.
    for i in range(20):
        verifier.check(f"Bearer {issue_token(PRIVATE, f'p{i}', ttl=60, now=NOW)}", NOW)
        assert len(verifier._valid) <= 4


def test_a_token_not_yet_valid_becomes_valid() -> None:
    verifier = TokenVerifier(PUBLIC, leeway=0)
    header = "Bearer " + _signed({"sub": "p", "exp": NOW + 600, "nbf": NOW + 300})
    with pytest.raises(BearerTokenError, match="not valid yet"):
        verifier.check(header, NOW)
    assert verifier.check(header, NOW + 300).subject == "p"


# -- the tracker's answers --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def auth_tracker(tmp_path: Path) -> AsyncIterator[str]:
    key_file = tmp_path / "auth.pub.pem"
    key_file.write_bytes(public_key_pem(PUBLIC))
    settings = ServerSettings(auth_key=key_file)
    async with running_tracker(TrackerConfig(), settings=settings) as running:
        yield running.url


def _now_token(peer_id: str, key: object = PRIVATE, **kwargs: object) -> str:
    return issue_token(key, peer_id, ttl=600, now=time.time(), **kwargs)  # type: ignore[arg-type]


UNAUTHORIZED_HEADERS: dict[str, tuple[dict[str, str], str | None]] = {
    "missing": ({}, None),
    "another scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
    "malformed": ({"Authorization": "Bearer not a token"}, "no well-formed bearer token"),
    "garbage": ({"Authorization": "Bearer abc.def.ghi"}, "malformed"),
    "expired": (
        {"Authorization": "Bearer " + issue_token(PRIVATE, "p1", ttl=60, now=time.time() - 999)},
        "expired",
    ),
    "badly signed": (
        {"Authorization": "Bearer " + _now_token("p1", OTHER_PRIVATE)},
        "signature does not verify",
    ),
}


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
@pytest.mark.parametrize("case", sorted(UNAUTHORIZED_HEADERS))
async def test_every_401_form(tmp_path: Path, encoding: Encoding, case: str) -> None:
    headers, description = UNAUTHORIZED_HEADERS[case]
    body = codec_for(encoding).encode_request(
        ConnectRequest(version=V11, transaction_id="7", peer_id="p1")
    )
    async with (
        auth_tracker(tmp_path) as url,
        aiohttp.ClientSession() as session,
        session.post(
            url, data=body, headers={"Content-Type": encoding.content_type, **headers}
        ) as resp,
    ):
        data = await resp.read()
        assert resp.status == 401
        challenge = resp.headers["WWW-Authenticate"]
        if description is None:
            assert challenge == 'Bearer realm="ppsp"'
        else:
            assert challenge.startswith('Bearer realm="ppsp", error="invalid_token", ')
            assert description in challenge
        assert resp.headers["Content-Type"] == encoding.content_type
        answer = codec_for(encoding).decode_response(data, resp.status, resp.reason or "")
        assert isinstance(answer, ErrorResponse)
        assert answer.code is TrackerErrorCode.AUTHENTICATION_REQUIRED
        if encoding is Encoding.JSON:
            assert orjson.loads(data)["PPSPTrackerProtocol"]["error_code"] == 6
        else:
            assert resp.reason == "Authentication Required"


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
async def test_a_valid_token_is_served_and_its_subject_must_be_the_peer(
    tmp_path: Path, encoding: Encoding
) -> None:
    codec = codec_for(encoding)
    async with auth_tracker(tmp_path) as url, aiohttp.ClientSession() as session:

        async def connect(peer_id: str, token: str) -> tuple[int, object]:
            body = codec.encode_request(
                ConnectRequest(version=V11, transaction_id="1", peer_id=peer_id)
            )
            headers = {"Content-Type": encoding.content_type, "Authorization": f"Bearer {token}"}
            async with session.post(url, data=body, headers=headers) as resp:
                data = await resp.read()
                return resp.status, codec.decode_response(data, resp.status, resp.reason or "")

        status, answer = await connect("p1", _now_token("p1"))
        assert status == 200 and isinstance(answer, TrackerResponse), answer
        # The credentials reach the core, which holds the PeerID to the token's subject.
        status, answer = await connect("p2", _now_token("p1"))
        assert status in (401, 403), answer
        assert isinstance(answer, ErrorResponse)


async def test_pages_need_a_token_too(tmp_path: Path) -> None:
    async with auth_tracker(tmp_path) as url, aiohttp.ClientSession() as session:
        for page in ("/status", "/metrics"):
            async with session.get(url + page) as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"] == 'Bearer realm="ppsp"'
            headers = {"Authorization": "Bearer " + _now_token("anyone")}
            async with session.get(url + page, headers=headers) as resp:
                assert resp.status == 200


async def test_an_unusable_auth_key_stops_the_tracker_before_it_listens(tmp_path: Path) -> None:
    settings = ServerSettings(auth_key=tmp_path / "missing.pem")
    with pytest.raises(KeyFileError, match="no public key file"):
        async with running_tracker(TrackerConfig(), settings=settings):
            raise AssertionError("listening")
