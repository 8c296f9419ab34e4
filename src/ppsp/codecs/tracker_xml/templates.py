"""Tracker XML answers written from string templates (the server's hot path).

Every value is validated by the rules of the element-tree writer (:mod:`.write`) and escaped;
what :func:`encode_response` writes is byte for byte what
:func:`~ppsp.codecs.tracker_xml.write.encode_response_tree` writes, which checks it
(tests/codec/test_perf_invariants.py).  A message that fails validation is handed to the tree
writer, which raises the error, so that both report the same one.

What was written for a listed peer is kept in its entry (:mod:`ppsp.wire.encoded`: entries are
immutable and the tracker lists the same entry while its member is unchanged and among the
members listed last), and what was written for an address is kept by identity (the storage
hands out the same address objects again and again; an address has no slot to spare, see
docs/BENCHMARKS.md).  An address met for the first time that is a canonical IPv4 address with
an integer port is written from its shape's text (the fields besides its IP address and port,
checked once as :func:`_address_fragment` checks them), which is what the tracker lists of a
member whose entry is no longer kept.  An entry or address that fails validation keeps nothing
and is refused every time.
"""

from __future__ import annotations

import re

from ppsp.codecs.tracker_xml.values import (
    ERROR_TEXT,
    NAMESPACE,
    ROOT,
    SUCCESS_TEXT,
    XML_DECLARATION,
    check_integer,
    check_ip,
    check_swarm,
    check_token,
    is_requester,
    status_phrase,
)
from ppsp.codecs.tracker_xml.write import bounded_body, encode_response_tree
from ppsp.errors import LocalProtocolError
from ppsp.wire.common import (
    AddressFamily,
    AddressType,
    PeerAddress,
    PeerInfo,
    keyed_by_value,
    template_shape,
)
from ppsp.wire.encoded import FormSlot, IdentityForms, ShapeForms, claim_form_slot
from ppsp.wire.fields import (
    MAX_LAYOUTS,
    MAX_LISTED_PEERS,
    MAX_MESSAGE_BYTES,
    MAX_PEER_ADDRESSES,
    MAX_PORT,
    MAX_SWARM_ACTIONS,
    MAX_TOKEN_LENGTH,
    MIN_PORT,
    RESERVED_SWARM_IDS,
)
from ppsp.wire.packed import (
    Layout,
    PackedPeerInfo,
    layout_forms,
    layout_of,
    packed_fields,
    packed_of,
)
from ppsp.wire.tracker import ActionResult, ErrorResponse, ProtocolVersion, TrackerResponse

_ENTRY_FORMS: FormSlot[PeerInfo, str] = claim_form_slot("tracker XML")
"""The ``<PeerInfo swarmID=...>`` fragment written for a listed peer, kept in the entry."""

_ADDRESSES_KEPT = 16384
_ADDRESS_FORMS: IdentityForms[PeerAddress, str] = IdentityForms(
    _ADDRESSES_KEPT, by_value=keyed_by_value
)
"""The indented ``<PeerAddress .../>`` written for an address, by identity, then by value."""

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_HEADS = {
    version: (
        XML_DECLARATION.decode("ascii")
        + f'<{ROOT} xmlns="{NAMESPACE}" version="{version.value}">\n'
    )
    for version in ProtocolVersion
}
_TAIL = f"</{ROOT}>\n"
_INFO_INDENT = "\n      "
_PEER_INFO_HEAD = "    <PeerInfo"
_PEER_INFO_TAIL = "\n    </PeerInfo>\n"

_TOKEN_CACHE: dict[tuple[str, str], str] = {}
_TOKENS_KEPT = 16384
"""Most validated identifiers kept, as ready-made pieces of the document (those that are not
:data:`_PLAIN`: the plain ones are written without a look-up)."""

_PLAIN = re.compile(f"[!#-%'-;=?-~]{{1,{MAX_TOKEN_LENGTH}}}").fullmatch
"""A token of printable ASCII without the space, ``"``, ``&``, ``<`` and ``>``: valid
(:data:`~ppsp.wire.fields.TOKEN_RE` takes every printable ASCII character but the space) and
written as it is, in an attribute or in text.  The identifiers of a tracker are almost all
plain, so their pieces are written at C speed instead of being checked, escaped and kept: at
100,000 peers the pieces of the peers listed no longer fit any bounded table (issue 16)."""


def encode_response(msg: TrackerResponse | ErrorResponse) -> bytes:
    """Encode a tracker answer body in ``msg.version``.

    A :class:`~ppsp.wire.tracker.TrackerResponse` becomes ``<Response>SUCCESSFUL</Response>``,
    its transaction ID (plain, or ``<Result>`` elements when it has per-action results, the
    root ID first) and a PeerGroup: the requester first without ``@swarmID``, then every peer
    with its swarm ID.  An :class:`~ppsp.wire.tracker.ErrorResponse` becomes a minimal document
    whose ``<Response>`` is the code's :data:`~ppsp.codecs.tracker_xml.ERROR_TEXT`; the HTTP
    status (``msg.code.http_status``) and reason phrase are the server's to send.  Raises
    :class:`~ppsp.errors.LocalProtocolError` for a message that would not decode back to
    itself (for example a requester without a REFLEXIVE address).
    """
    try:
        return _encode_response_fast(msg)
    except LocalProtocolError:
        return encode_response_tree(msg)


def _xml_text(value: str) -> str:
    return value.translate(_ESCAPES)


def _xml_attr(value: str) -> str:
    return value.translate(_ATTR_ESCAPES)


def _fast_token(value: str | None, what: str) -> str:
    """A token validated as the tree writer does, escaped for an attribute value or text."""
    return _xml_attr(check_token(value, what, LocalProtocolError))


def _address_fragment(address: PeerAddress) -> str:
    """A valid address's indented ``<PeerAddress .../>``, checked as the tree writer checks it."""
    ip = check_token(address.ip, "PeerAddress ip", LocalProtocolError)
    if not isinstance(address.family, AddressFamily):
        raise LocalProtocolError("PeerAddress family is not an address family")
    check_ip(ip, address.family, LocalProtocolError)
    port = check_integer(address.port, "port", MAX_PORT, MIN_PORT)
    return (
        f'{_INFO_INDENT}<PeerAddress addrType="{address.family.value}" ip="{_xml_attr(ip)}"'
        f' port="{port}"{_shape_tail(address)}/>'
    )


_SHAPE_TAILS: ShapeForms[PeerAddress, str] = ShapeForms(4096)
"""The checked tail of each address shape (at most 4,096 shapes)."""


def _shape_tail(address: PeerAddress) -> str:
    """What :func:`_address_fragment` writes after an address's port, checked as it checks it."""
    parts = []
    if address.priority is not None:
        parts.append(f' priority="{check_integer(address.priority, "priority")}"')
    if address.type is not None:
        if not isinstance(address.type, AddressType):
            raise LocalProtocolError("PeerAddress type is not an address type")
        parts.append(f' type="{address.type.value}"')
    for name, value in (
        ("connection", address.connection),
        ("asn", address.asn),
        ("peerProtocol", address.peer_protocol),
    ):
        if value is not None:
            parts.append(f' {name}="{_fast_token(value, name)}"')
    return "".join(parts)


def _address_template(address: PeerAddress) -> str | None:
    """:func:`_address_fragment` of a canonical IPv4 address with an integer port, written from
    the checked tail of its shape (the fields besides its IP address and port), kept per shape;
    None for any other address (written by :func:`_address_fragment`)."""
    shape = template_shape(address)
    if shape is None:
        return None
    tail = _SHAPE_TAILS.form(shape, address, _shape_tail)
    if tail is None:
        return None
    ip, port = address.ip, address.port
    return f'{_INFO_INDENT}<PeerAddress addrType="ipv4" ip="{ip}" port="{port}"{tail}/>'


def _token_piece(
    value: str, what: str, template: str, *, text: bool = False, swarm: bool = False
) -> str:
    """``template`` holding the validated token ``value`` (a swarm ID with ``swarm``), escaped
    for an attribute (or for element content with ``text``): written at once when it is
    :data:`_PLAIN`, else checked, escaped and cached by value and template."""
    plain = type(value) is str
    if plain:
        if _PLAIN(value) and not (swarm and value in RESERVED_SWARM_IDS):
            return template.format(value)
        piece = _TOKEN_CACHE.get((template, value))
        if piece is not None:
            return piece
    token = (check_swarm if swarm else check_token)(value, what, LocalProtocolError)
    piece = template.format(_xml_text(token) if text else _xml_attr(token))
    if plain:
        if len(_TOKEN_CACHE) >= _TOKENS_KEPT:
            _TOKEN_CACHE.clear()
        _TOKEN_CACHE[(template, value)] = piece
    return piece


def _listed_fragment(info: PeerInfo) -> str:
    """A listed peer's ``<PeerInfo swarmID=...>`` fragment (kept in the entry by the caller).

    An entry whose peer ID and swarm ID are :data:`_PLAIN` is written by one f-string: at
    100,000 peers most listed entries are new ones (their kept forms do not fit a bounded
    table), so this runs for most of a FIND answer's entries.
    """
    if type(info) is PackedPeerInfo:
        fragment = _packed_fragment(info)
        if fragment is not None:
            return fragment
    peer_id, addresses, swarm_id = info.peer_id, info.addresses, info.swarm_id
    if peer_id is None or not addresses:
        raise LocalProtocolError("a listed peer needs a peer ID and an address")
    if (
        type(peer_id) is str
        and type(swarm_id) is str
        and _PLAIN(peer_id)
        and _PLAIN(swarm_id)
        and swarm_id not in RESERVED_SWARM_IDS
        and len(addresses) <= MAX_PEER_ADDRESSES
    ):
        forms = "".join(map(_address_form, addresses))
        return (
            f'    <PeerInfo swarmID="{swarm_id}">\n      <PeerID>{peer_id}</PeerID>'
            f"{forms}{_PEER_INFO_TAIL}"
        )
    return _render_peer_info(addresses, peer_id, swarm_id)


_LAYOUT_TEMPLATES: IdentityForms[Layout, str | None] = IdentityForms(MAX_LAYOUTS)
"""The ``%``-template of a packed entry of each layout, by the layout's identity (one object per
layout while the process lives); None for a layout written by the general writer."""


def _layout_template(layout: Layout) -> str | None:
    """The text of a listed entry whose addresses have ``layout``, as a ``%``-template of its
    swarm ID, its peer ID and :func:`~ppsp.wire.packed.packed_fields`: each address's tail
    checked once for its shape as :func:`_address_template` checks it; None when the general
    writer writes it."""
    tails = layout_forms(
        layout, lambda shape, sample: _SHAPE_TAILS.form(shape, sample, _shape_tail)
    )
    if tails is None:
        return None
    # Packed IPv4 addresses and ports read back canonical and in range (ppsp.wire.packed):
    # the text is what _address_template writes for the unpacked address.
    addresses = "".join(
        f'{_INFO_INDENT}<PeerAddress addrType="ipv4" ip="%d.%d.%d.%d" port="%d"'
        + tail.replace("%", "%%")
        + "/>"
        for tail in tails
    )
    return '    <PeerInfo swarmID="%s">\n      <PeerID>%s</PeerID>' + addresses + _PEER_INFO_TAIL


_LAST_PLAIN_SWARM: list[object] = [object()]
"""The swarm ID last found :data:`_PLAIN` and not reserved (at first an object no swarm ID
is): the entries of one answer share one (interned) swarm ID, checked once for all of them."""


def _packed_fragment(info: PackedPeerInfo) -> str | None:
    """:func:`_listed_fragment` of an entry whose addresses are packed
    (:mod:`ppsp.wire.packed`), written from the bytes by its layout's template: the same text,
    without an address object; None when the general path must write it (IDs that are not
    :data:`_PLAIN`, a layout without a template)."""
    peer_id, swarm_id = info.peer_id, info.swarm_id
    if swarm_id is not _LAST_PLAIN_SWARM[0]:
        if not (type(swarm_id) is str and _PLAIN(swarm_id) and swarm_id not in RESERVED_SWARM_IDS):
            return None
        _LAST_PLAIN_SWARM[0] = swarm_id
    if not (type(peer_id) is str and _PLAIN(peer_id)):
        return None
    packed = packed_of(info)
    template = _LAYOUT_TEMPLATES.form(layout_of(packed), _layout_template) if packed else None
    if template is None:
        return None
    return template % (swarm_id, peer_id, *packed_fields(packed))


def _address_form(address: PeerAddress) -> str:
    """An address's indented ``<PeerAddress .../>``: kept by identity (the requester's address,
    shared by its answers), else written from its shape's template (a listed peer's, built from
    the storage's packed form when its entry is not kept), else by the general writer (kept by
    identity or value).  LocalProtocolError for an invalid address."""
    return _ADDRESS_FORMS.templated(address, _address_template, _address_fragment)


def _render_peer_info(
    addresses: tuple[PeerAddress, ...], peer_id: str | None, swarm_id: str | None
) -> str:
    if len(addresses) > MAX_PEER_ADDRESSES:
        raise LocalProtocolError(f"more than {MAX_PEER_ADDRESSES} addresses in a PeerInfo")
    if swarm_id is None:
        head = _PEER_INFO_HEAD
    else:
        head = _token_piece(swarm_id, "PeerInfo swarm_id", '    <PeerInfo swarmID="{}"', swarm=True)
    if peer_id is None and not addresses:
        return head + "/>\n"
    parts = [head, ">"]
    if peer_id is not None:
        what = "PeerInfo peer_id"
        parts.append(_token_piece(peer_id, what, "\n      <PeerID>{}</PeerID>", text=True))
    parts.extend(map(_address_form, addresses))
    parts.append(_PEER_INFO_TAIL)
    return "".join(parts)


def _results_fragment(parts: list[str], msg: TrackerResponse, tid: str) -> None:
    """The ``<Result>`` lines of the tree writer's results, with its checks."""
    if len(msg.results) > MAX_SWARM_ACTIONS:
        raise LocalProtocolError(f"more than {MAX_SWARM_ACTIONS} results")
    roots = [r for r in msg.results if r.transaction_id == tid]
    others = [r for r in msg.results if r.transaction_id != tid]
    if not tid.endswith(".0") and any(
        r.transaction_id is not None and r.transaction_id.endswith(".0") for r in others
    ):
        raise LocalProtocolError("only the root transaction ID may end in '.0'")
    first = roots[0] if roots else ActionResult(transaction_id=tid)
    for result in (first, *others, *roots[1:]):
        status = result.status
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise LocalProtocolError(f"result status {status!r} is not in [100, 599]")
        parts.append("    <Result")
        if result.transaction_id is not None:
            what = "result transaction_id"
            parts.append(f' transactionID="{_fast_token(result.transaction_id, what)}"')
        if result.swarm_id is not None:
            swarm_id = check_swarm(result.swarm_id, "result swarm_id", LocalProtocolError)
            parts.append(f' swarmID="{_xml_attr(swarm_id)}"')
        parts.append(f">{status} {status_phrase(status)}</Result>\n")


def _encode_response_fast(msg: TrackerResponse | ErrorResponse) -> bytes:
    """:func:`encode_response` from string templates; LocalProtocolError for an invalid one."""
    head = _HEADS.get(msg.version) if isinstance(msg.version, ProtocolVersion) else None
    if head is None:
        raise LocalProtocolError(f"unknown protocol version {msg.version!r}")
    parts = [head]
    if isinstance(msg, ErrorResponse):
        parts.append(f"  <Response>{ERROR_TEXT[msg.code]}</Response>\n")
        if msg.transaction_id is not None:
            tid = check_token(msg.transaction_id, "transaction_id", LocalProtocolError)
            parts.append(f"  <TransactionID>{_xml_text(tid)}</TransactionID>\n")
        parts.append(_TAIL)
        return "".join(parts).encode()
    parts.append(f"  <Response>{SUCCESS_TEXT}</Response>\n")
    tid = check_token(msg.transaction_id, "transaction_id", LocalProtocolError)
    if msg.results:
        parts.append("  <TransactionID>\n")
        _results_fragment(parts, msg, tid)
        parts.append("  </TransactionID>\n")
    else:
        parts.append(f"  <TransactionID>{_xml_text(tid)}</TransactionID>\n")
    requester = msg.requester
    if requester is not None and not any(
        address.type is AddressType.REFLEXIVE for address in requester.addresses
    ):
        raise LocalProtocolError("the requester needs a REFLEXIVE address")
    if requester is None and any(is_requester(peer) for peer in msg.peers):
        raise LocalProtocolError(
            "a peer without swarm ID holding a REFLEXIVE address would read as the requester"
        )
    if len(msg.peers) > MAX_LISTED_PEERS:
        raise LocalProtocolError(f"more than {MAX_LISTED_PEERS} peers")
    if requester is not None or msg.peers:
        parts.append("  <PeerGroup>\n")
        if requester is not None:
            parts.append(_render_peer_info(requester.addresses, requester.peer_id, None))
        parts.extend(_ENTRY_FORMS.forms(msg.peers, _listed_fragment))
        parts.append("  </PeerGroup>\n")
    parts.append(_TAIL)
    data = "".join(parts).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        bounded_body(data)  # raises
    return data
