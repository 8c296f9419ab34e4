"""Hardened XML parsing: the byte-level shortcuts refuse exactly what the full checks refuse."""

from __future__ import annotations

import pytest

from ppsp.codecs.safexml import XMLRejected, _plain_utf8, parse_xml
from ppsp.wire.fields import MAX_XML_DEPTH

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def nested(depth: int, *, empty: bool = False) -> str:
    if empty:
        return "<a>" * (depth - 1) + "<a/>" + "</a>" * (depth - 1)
    return "<a>" * depth + "</a>" * depth


@pytest.mark.parametrize("head", ["", DECLARATION, '<?xml version="1.0"?>\n'])
@pytest.mark.parametrize("empty", [False, True])
def test_depth_bound_on_plain_documents(head: str, empty: bool) -> None:
    ok = (head + nested(MAX_XML_DEPTH, empty=empty)).encode()
    deep = (head + nested(MAX_XML_DEPTH + 1, empty=empty)).encode()
    assert _plain_utf8(ok) and _plain_utf8(deep)
    parse_xml(ok)
    with pytest.raises(XMLRejected):
        parse_xml(deep)


@pytest.mark.parametrize(
    "filler",
    [
        "<?pi " + "</b>" * 40 + "?>",  # end tags inside a processing instruction
        "<!-- " + "</b>" * 40 + " -->",  # ... inside a comment
        "<![CDATA[" + "</b>" * 40 + "]]>",  # ... inside CDATA
    ],
)
def test_markup_that_fools_a_byte_count_gets_the_full_check(filler: str) -> None:
    deep = (DECLARATION + "<r>" + filler + nested(MAX_XML_DEPTH) + "</r>").encode()
    assert not _plain_utf8(deep)
    with pytest.raises(XMLRejected):
        parse_xml(deep)
    shallow = (DECLARATION + "<r>" + filler + "<a/></r>").encode()
    parse_xml(shallow)


@pytest.mark.parametrize(
    "data",
    [
        nested(MAX_XML_DEPTH + 1).encode("utf-16"),
        nested(MAX_XML_DEPTH + 1).encode("utf-16-le"),
        ('<?xml version="1.0" encoding="UTF-16"?>' + nested(MAX_XML_DEPTH + 1)).encode("utf-16"),
        b"\xef\xbb\xbf" + nested(MAX_XML_DEPTH + 1).encode(),
        # UTF-7 spells "<" without the byte "<".
        (
            '<?xml version="1.0" encoding="UTF-7"?><r>' + "+ADw-a>" * 17 + "+ADw-/a>" * 17 + "</r>"
        ).encode(),
    ],
)
def test_other_encodings_get_the_full_checks(data: bytes) -> None:
    assert not _plain_utf8(data)
    with pytest.raises(XMLRejected):
        parse_xml(data)


def test_doctype_in_utf16_is_refused() -> None:
    data = '<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'.encode("utf-16")
    assert not _plain_utf8(data)
    with pytest.raises(XMLRejected):
        parse_xml(data)


def test_plain_documents_have_no_doctype() -> None:
    assert not _plain_utf8(b'<?xml version="1.0"?><!DOCTYPE r><r/>')
    assert not _plain_utf8(b"<!DOCTYPE r><r/>")
    assert _plain_utf8(b"<r/>")
    assert not _plain_utf8(b" <r/>")


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><r>!</r>',  # a "!" anywhere: the full checks
        b"<r a='?'/>",  # a "?" after the declaration: the full checks
        b'<?xml version="1.0" encoding="UTF-8"?><r><?pi x?></r>',
        b'<?xml version="1.0"?><?xml-stylesheet href="x"?><r/>',
    ],
)
def test_bangs_and_question_marks_after_the_declaration_are_not_plain(data: bytes) -> None:
    assert not _plain_utf8(data)
    parse_xml(data)  # well-formed and harmless: accepted through the full checks


def test_plain_declarations_are_recognised() -> None:
    for head in (DECLARATION, '<?xml version="1.0" encoding="utf-8"?>', '<?xml version="1.0"?>'):
        assert _plain_utf8((head + "\n<r>a</r>").encode())
