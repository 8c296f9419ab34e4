"""Packed addresses (:mod:`ppsp.wire.packed`): what packs, reads back equal, and the bounds of
the tables kept on the way."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppsp.wire import packed
from ppsp.wire.packed import OCTETS_KEPT, pack, packed_fields, unpack
from ppsp.wire.tracker import AddressFamily, AddressType, PeerAddress

from .strategies import addresses


@given(st.lists(addresses(), min_size=1, max_size=4))
def test_what_packs_reads_back_equal(listed: list[PeerAddress]) -> None:
    form = pack(listed)
    if form is None:
        # Not packed: an IPv6 address, or (in a long-running process) a full table of shapes.
        full = (
            len(packed._SHAPES) >= packed.MAX_SHAPES or len(packed._LAYOUTS) >= packed.MAX_LAYOUTS
        )
        assert full or any(address.family is not AddressFamily.IPV4 for address in listed)
        return
    assert unpack(form) == tuple(listed)
    fields = packed_fields(form)
    assert len(fields) == 5 * len(listed)
    for at, address in enumerate(listed):
        octets, port = fields[5 * at : 5 * at + 4], fields[5 * at + 4]
        assert ".".join(map(str, octets)) == address.ip and port == address.port


@pytest.mark.usefixtures("fresh_packed_tables")
def test_an_ip_not_in_canonical_form_never_packs_even_after_its_canonical_twin() -> None:
    canonical = PeerAddress(ip="10.0.0.1", port=7000, type=AddressType.HOST)
    assert pack((canonical,)) is not None
    for text in ("010.0.0.1", "10.0.0.01", "10.0.0.1 ", "10.0.0.256", "10.0.0"):
        assert pack((PeerAddress(ip=text, port=7000, type=AddressType.HOST),)) is None


@pytest.mark.usefixtures("fresh_packed_tables")
def test_the_octets_kept_are_bounded() -> None:
    for n in range(OCTETS_KEPT + 10):
        ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        form = pack((PeerAddress(ip=ip, port=1 + n % 65535, type=AddressType.REFLEXIVE),))
        assert form is not None and packed_fields(form)[:4] == tuple(map(int, ip.split(".")))
    assert len(packed._octets) <= OCTETS_KEPT
