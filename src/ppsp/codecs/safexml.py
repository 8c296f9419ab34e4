"""Hardened XML parsing for every XML codec of the project.

Hostile input is normal input: no DTDs, no entity expansion, no network access, bounded size and
depth.  Any problem surfaces as :class:`XMLRejected`, which the codecs turn into their own
protocol error (400 / ``INVALID SYNTAX``).  The bounds are those of every codec
(:data:`~ppsp.wire.fields.MAX_MESSAGE_BYTES`, :data:`~ppsp.wire.fields.MAX_XML_DEPTH`).
"""

from __future__ import annotations

import threading

from lxml import etree

from ppsp.wire.fields import MAX_MESSAGE_BYTES, MAX_XML_DEPTH


class XMLRejected(ValueError):
    """The document is not acceptable: malformed, too large, too deep, or uses a DTD/entities."""


def _parser(*, keep_blank_text: bool = True) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=not keep_blank_text,
        collect_ids=False,
        recover=False,
    )


_TOO_DEEP = etree.XPath("boolean(" + "/*" * (MAX_XML_DEPTH + 1) + ")")
"""Whether a document has an element deeper than MAX_XML_DEPTH (compiled once: ~2 µs a check)."""

_PARSERS = threading.local()


def _thread_parser(keep_blank_text: bool = True) -> etree.XMLParser:
    # Building a parser costs about as much as parsing a small message; one per thread (and
    # kind) is reused (an lxml parser must not be shared between threads).
    name = "parser" if keep_blank_text else "compact_parser"
    parser: etree.XMLParser | None = getattr(_PARSERS, name, None)
    if parser is None:
        parser = _parser(keep_blank_text=keep_blank_text)
        setattr(_PARSERS, name, parser)
    return parser


_UTF8_DECLARATIONS = (
    b'<?xml version="1.0" encoding="UTF-8"?>',
    b'<?xml version="1.0" encoding="utf-8"?>',
    b'<?xml version="1.0"?>',
)


def _plain_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 to the parser beyond doubt and holds only element markup.

    It must open with a UTF-8 XML declaration, or with a tag (no declaration, no byte-order
    mark: UTF-8 by default), and hold no ``!`` at all (so no DTD, comment or CDATA) and no ``?``
    after the declaration (so no processing instruction).  In such a document every ``<`` byte
    opens a tag, and every ``</`` an end tag.  (Single bytes are looked for, not ``<!`` and
    ``<?``: a one-byte search is several times faster, and a stray ``!`` or ``?`` in text only
    sends a document to the full checks.)
    """
    for declaration in _UTF8_DECLARATIONS:
        if data.startswith(declaration):
            start = len(declaration)
            break
    else:
        if not (data[:1] == b"<" and data[1:2].isalpha()):
            return False
        start = 0
    return b"!" not in data and data.find(b"?", start) == -1


def parse_xml(
    data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, keep_blank_text: bool = True
) -> etree._Element:
    """Parse ``data`` into an element tree, refusing anything unsafe.

    A document type declaration of any kind is refused outright (it is the carrier of entity
    expansion and external entity attacks, and no PPSP message has one).  With
    ``keep_blank_text=False`` whitespace-only text between elements is dropped (``text`` and
    ``tail`` are then None where they held only indentation): fewer nodes to build, for callers
    that ignore such whitespace anyway.
    """
    if len(data) > max_bytes:
        raise XMLRejected(f"document of {len(data)} bytes exceeds {max_bytes}")
    # Most messages are plain UTF-8 (see _plain_utf8): they cannot hold a DTD, and the number of
    # start tags, which bounds the depth, is a count of bytes.  The others get the full checks.
    plain = _plain_utf8(data)
    if not plain and (b"<!DOCTYPE" in data or b"<!ENTITY" in data or b"<!doctype" in data):
        raise XMLRejected("document type declarations are not allowed")
    try:
        root = etree.fromstring(data, parser=_thread_parser(keep_blank_text))
    except etree.XMLSyntaxError as exc:
        raise XMLRejected(f"malformed XML: {exc.msg}") from exc
    except (ValueError, TypeError) as exc:
        raise XMLRejected(f"malformed XML: {exc}") from exc
    if not plain:
        docinfo = root.getroottree().docinfo
        # lxml-stubs lack DocInfo.doctype; read it dynamically.
        if getattr(docinfo, "doctype", "") or docinfo.internalDTD is not None:
            raise XMLRejected("document type declarations are not allowed")
    start_tags = data.count(b"<") - data.count(b"</") if plain else MAX_XML_DEPTH + 1
    if start_tags > MAX_XML_DEPTH and _TOO_DEEP(root):
        raise XMLRejected(f"document nests deeper than {MAX_XML_DEPTH} levels")
    return root


def local_name(element: etree._Element) -> str:
    """The element's name without namespace (names are matched by local name, PROFILE.md)."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return etree.QName(tag).localname


def attribute(element: etree._Element, name: str) -> str | None:
    """The attribute ``name`` matched by local name, whatever its namespace."""
    value = element.get(name)
    if value is not None:
        return value
    for key, found in element.attrib.items():
        if isinstance(key, str) and key.endswith("}" + name):
            return str(found)
    return None
