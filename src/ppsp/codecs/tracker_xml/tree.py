"""Reading the tracker XML tree: parsing, grouping children, and typed reads of values.

The readers check the common, valid case first and describe the field (which costs more than the
check) only when they raise :class:`~ppsp.errors.BadRequest`.  Elements and attributes are
matched by local name, whatever their namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from lxml import etree

from ppsp.codecs.safexml import XMLRejected, parse_xml
from ppsp.codecs.tracker_xml.values import (
    RESULT_RE,
    ROOT,
    check_swarm,
    check_token,
    members,
    parse_enum,
    parse_integer,
)
from ppsp.errors import BadRequest, PayloadTooLarge, TrackerProtocolError, UnsupportedVersion
from ppsp.wire.fields import (
    DECIMAL_RE,
    MAX_INTEGER,
    MAX_MESSAGE_BYTES,
    MAX_SWARM_ACTIONS,
    RESERVED_SWARM_IDS,
    TOKEN_RE,
)
from ppsp.wire.tracker import ActionResult, ProtocolVersion

Element = etree._Element
"""An element of a parsed document."""

_E = TypeVar("_E", bound=Enum)
_T = TypeVar("_T")

_SINGLETONS = (
    "Request",
    "Response",
    "TransactionID",
    "PeerID",
    "PeerNum",
    "PeerGroup",
    "ContentGroup",
    "StatisticsGroup",
)
_TOP_LIMITS = {**dict.fromkeys(_SINGLETONS, 1), "SwarmID": MAX_SWARM_ACTIONS}


def parse(data: bytes) -> Element:
    """Parse a bounded body with the hardened parser; its root must be ``PPSPTrackerProtocol``."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(f"message body of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        # Whitespace-only text is ignored everywhere below; the parser need not keep it.
        root = parse_xml(data, keep_blank_text=False)
    except XMLRejected as exc:
        raise BadRequest(str(exc)) from None
    except (etree.LxmlError, ValueError, TypeError) as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    if local_name(root) != ROOT:
        raise BadRequest(f"root element is <{local_name(root)}>, not <{ROOT}>")
    return root


def read_version(root: Element) -> ProtocolVersion:
    """The document's ``@version``: 1.0 or 1.1 (UnsupportedVersion otherwise)."""
    value = attribute(root, "version")
    if value is None:
        raise BadRequest("@version is missing")
    text = value.strip()
    version = members(ProtocolVersion).get(text)
    if version is not None:
        return version
    raise UnsupportedVersion(
        f"PPSP-TP version {text[:20]!r} is not supported",
        reason="PPSP version " + ", ".join(v.value for v in ProtocolVersion),
    )


def top_level(root: Element) -> dict[str, list[Element]]:
    """The root's children by local name, each singleton at most once."""
    return children_by_name(root, _TOP_LIMITS)


def child_elements(element: Element) -> list[Element]:
    """Child elements, and a check that the element holds no character data besides them."""
    text = element.text
    if text is not None and text.strip():
        raise BadRequest(f"unexpected text in <{local_name(element)}>")
    children = []
    for child in element:
        tail = child.tail
        if tail is not None and tail.strip():
            raise BadRequest(f"unexpected text in <{local_name(element)}>")
        if isinstance(child.tag, str):
            children.append(child)
    return children


def leaf_text(element: Element) -> str:
    """Stripped text of a leaf element; a leaf with child elements is a bad request."""
    if len(element) and any(isinstance(child.tag, str) for child in element):
        raise BadRequest(f"<{local_name(element)}> must not contain elements")
    return (element.text or "").strip()


def children_by_name(element: Element, limits: dict[str, int]) -> dict[str, list[Element]]:
    """Children by local name; ``limits`` bounds the count of each name it lists.

    The checks of :func:`child_elements` come first: text where only elements belong is reported
    before a count over its bound, as if the children had been listed and then grouped.
    """
    text = element.text
    if text is not None and text.strip():
        raise BadRequest(f"unexpected text in <{local_name(element)}>")
    groups: dict[str, list[Element]] = {}
    over: str | None = None
    for child in element:
        tail = child.tail
        if tail is not None and tail.strip():
            raise BadRequest(f"unexpected text in <{local_name(element)}>")
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = _LOCAL_NAMES.get(tag)
        if name is None:
            name = tag_local_name(tag)
        members = groups.get(name)
        if members is None:
            groups[name] = [child]
        else:
            members.append(child)
            # Every limit is at least 1, so a first member never exceeds its bound.
            if over is None and (limit := limits.get(name)) is not None and len(members) > limit:
                over = name
    if over is not None:
        raise BadRequest(f"more than {limits[over]} <{over}> in <{local_name(element)}>")
    return groups


def only_child(groups: dict[str, list[Element]], name: str) -> Element | None:
    """The first child named ``name``, or None."""
    members = groups.get(name)
    return members[0] if members else None


def required_child(groups: dict[str, list[Element]], name: str) -> Element:
    """The first child named ``name``; refused when absent."""
    element = only_child(groups, name)
    if element is None:
        raise BadRequest(f"<{name}> is missing")
    return element


def attribute(element: Element, name: str) -> str | None:
    """:func:`~ppsp.codecs.safexml.attribute`, listing only the names when ``name`` is absent."""
    value = element.get(name)
    if value is not None:
        return value
    suffix = "}" + name
    for key in element.keys():  # noqa: SIM118 (iterating an element yields its children)
        if isinstance(key, str) and key.endswith(suffix):
            return element.get(key)
    return None


def local_name(element: Element) -> str:
    """:func:`~ppsp.codecs.safexml.local_name`, without building a QName."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    name = _LOCAL_NAMES.get(tag)
    return name if name is not None else tag_local_name(tag)


_LOCAL_NAMES: dict[str, str] = {}
"""Local names by qualified tag (``{namespace}name``), for the tags seen most."""

_LOCAL_NAMES_SIZE = 256


def tag_local_name(tag: str) -> str:
    """The local name of a qualified tag, remembered for the tags seen most."""
    name = tag.rpartition("}")[2]
    # Bounded: a hostile document may carry any number of distinct tags.
    if len(_LOCAL_NAMES) < _LOCAL_NAMES_SIZE:
        _LOCAL_NAMES[tag] = name
    return name


def attr_token(element: Element, name: str, *, required: bool = False) -> str | None:
    """The token attribute ``name`` (stripped), or None when absent and not required."""
    value = attribute(element, name)
    if value is None:
        if not required:
            return None
    else:
        value = value.strip()
        if TOKEN_RE.fullmatch(value):
            return value
    return check_token(value, f"@{name} of <{local_name(element)}>", BadRequest)


def attr_integer(
    element: Element, name: str, *, required: bool = False, maximum: int = MAX_INTEGER
) -> int | None:
    """The integer attribute ``name``, or None when absent and not required."""
    value = attribute(element, name)
    if value is None:
        if not required:
            return None
    else:
        text = value.strip()
        if DECIMAL_RE.fullmatch(text) and (number := int(text)) <= maximum:
            return number
    return parse_integer(value, f"@{name} of <{local_name(element)}>", BadRequest, maximum)


def attr_enum(element: Element, name: str, cls: type[_E], *, required: bool = False) -> _E | None:
    """The member of ``cls`` attribute ``name`` names, or None when absent and not required."""
    value = attribute(element, name)
    if value is None:
        if not required:
            return None
    else:
        member = members(cls).get(value.strip())
        if member is not None:
            return member
    return parse_enum(cls, value, f"@{name} of <{local_name(element)}>")


def text_token(element: Element) -> str:
    """The token an element's text is."""
    text = leaf_text(element)
    if TOKEN_RE.fullmatch(text):
        return text
    return check_token(text, f"<{local_name(element)}>", BadRequest)


def text_swarm(element: Element) -> str:
    """The swarm ID an element holds (a token other than ``ALL`` and ``nil``)."""
    text = leaf_text(element)
    if TOKEN_RE.fullmatch(text) and text not in RESERVED_SWARM_IDS:
        return text
    return check_swarm(text, f"<{local_name(element)}>", BadRequest)


def attr_swarm(element: Element, name: str) -> str | None:
    """The optional swarm ID attribute ``name``."""
    value = attr_token(element, name)
    if value is None or value not in RESERVED_SWARM_IDS:
        return value
    return check_swarm(value, f"@{name} of <{local_name(element)}>", BadRequest)


def required_token(groups: dict[str, list[Element]], name: str) -> str:
    """``text_token(required_child(groups, name))``, in one call."""
    members = groups.get(name)
    if not members:
        raise BadRequest(f"<{name}> is missing")
    text = leaf_text(members[0])
    if TOKEN_RE.fullmatch(text):
        return text
    return check_token(text, f"<{local_name(members[0])}>", BadRequest)


def read_results(container: Element) -> tuple[str, tuple[ActionResult, ...]]:
    """Root transaction ID and per-action results of a response ``<TransactionID>``.

    Plain text is the root ID.  With ``<Result>`` children, the root ID is the first
    ``@transactionID`` that ends in ``.0`` or, failing that, the first ``@transactionID``.
    """
    if not any(isinstance(child.tag, str) for child in container):
        return text_token(container), ()
    children = child_elements(container)
    found = [child for child in children if local_name(child) == "Result"]
    # A root result and one per swarm action.
    if len(found) > MAX_SWARM_ACTIONS + 1:
        raise BadRequest(f"more than {MAX_SWARM_ACTIONS + 1} <Result> elements")
    results = []
    for element in found:
        match = RESULT_RE.fullmatch(leaf_text(element))
        if match is None:
            raise BadRequest("<Result> does not start with a status code")
        results.append(
            ActionResult(
                transaction_id=attr_token(element, "transactionID"),
                swarm_id=attr_swarm(element, "swarmID"),
                status=int(match.group(1)),
            )
        )
    ids = [result.transaction_id for result in results if result.transaction_id is not None]
    if not ids:
        raise BadRequest("<TransactionID> holds no transaction ID")
    root = next((tid for tid in ids if tid.endswith(".0")), ids[0])
    return root, tuple(results)


def peek_transaction_id(root: Element) -> str | None:
    """The message's transaction ID if it can be read, for error answers."""
    for child in root:
        if isinstance(child.tag, str) and local_name(child) == "TransactionID":
            try:
                return read_results(child)[0]
            except TrackerProtocolError:
                return None
    return None


def with_transaction_id(root: Element, decode: Callable[[Element], _T]) -> _T:
    """``decode(root)``, its protocol errors given the message's transaction ID."""
    try:
        return decode(root)
    except TrackerProtocolError as exc:
        if exc.transaction_id is None:
            exc.transaction_id = peek_transaction_id(root)
        raise
