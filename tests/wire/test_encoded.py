"""Encoded forms: each kept once, never part of a value, never kept when writing fails."""

from __future__ import annotations

from dataclasses import replace

import pytest

# The codecs claim the slots when their encoders load (the packages load them lazily).
import ppsp.codecs.tracker_json.encode
import ppsp.codecs.tracker_xml.templates  # noqa: F401
from ppsp.wire.common import PeerAddress, PeerInfo, keyed_by_value
from ppsp.wire.encoded import EncodedForms, FormSlot, IdentityForms, KeptForms, claim_form_slot

GOOD = PeerInfo(peer_id="p1", addresses=(PeerAddress(ip="192.0.2.1", port=1),), swarm_id="s")


class _Writer:
    """A writer that counts its calls and refuses entries without a peer ID."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, info: PeerInfo) -> str:
        self.calls += 1
        if info.peer_id is None:
            raise ValueError("no peer ID")
        return f"<{info.peer_id}>"


def _slot(index: int) -> FormSlot[PeerInfo, str]:
    """A keeper over one of the codecs' slots, for the test (a third claim is refused)."""
    return FormSlot(EncodedForms.__slots__[index], "test")


def test_each_codec_holds_one_slot_and_no_slot_is_left() -> None:
    with pytest.raises(RuntimeError):
        claim_form_slot("a third codec")
    with pytest.raises(RuntimeError):
        claim_form_slot("tracker XML")


def test_a_slot_keeps_what_was_written_once() -> None:
    slot, write = _slot(0), _Writer()
    info = replace(GOOD)
    assert slot.kept(info) is None
    assert slot.form(info, write) == "<p1>" and slot.form(info, write) == "<p1>"
    assert write.calls == 1 and slot.kept(info) == "<p1>"
    # The other codec's slot is its own.
    assert _slot(1).kept(info) is None


def test_a_slot_keeps_nothing_when_writing_fails() -> None:
    slot, write = _slot(0), _Writer()
    bad = PeerInfo(addresses=GOOD.addresses)
    for _ in range(2):
        with pytest.raises(ValueError):
            slot.form(bad, write)
    assert write.calls == 2 and slot.kept(bad) is None


def test_a_list_of_forms_writes_only_what_was_not_kept() -> None:
    slot, write = _slot(0), _Writer()
    entries = [replace(GOOD, peer_id=f"p{i}") for i in range(4)]
    slot.form(entries[2], write)
    assert slot.forms(entries, write) == ["<p0>", "<p1>", "<p2>", "<p3>"]
    assert write.calls == 4
    assert slot.forms(entries, write) == ["<p0>", "<p1>", "<p2>", "<p3>"] and write.calls == 4


def test_kept_forms_are_no_part_of_a_value() -> None:
    slot = _slot(0)
    info = replace(GOOD)
    slot.form(info, _Writer())
    copy = replace(info)
    assert copy == info and hash(copy) == hash(info) and repr(copy) == repr(info)
    assert slot.kept(copy) is None
    with pytest.raises((AttributeError, TypeError)):  # a frozen dataclass refuses setattr
        setattr(info, slot.name, "x")


def test_identity_forms_are_kept_by_identity_not_by_value() -> None:
    forms: IdentityForms[PeerInfo, str] = IdentityForms(4)
    write = _Writer()
    info, equal = replace(GOOD), replace(GOOD)
    assert forms.form(info, write) == forms.form(info, write) == "<p1>" and write.calls == 1
    assert forms.kept(equal) is None
    forms.form(equal, write)
    assert write.calls == 2


def test_identity_forms_by_value_share_one_form_between_equal_objects() -> None:
    # The address a peer is seen at is built anew for each of its requests: written once.
    forms: IdentityForms[PeerInfo, str] = IdentityForms(4, by_value=lambda info: True)
    write = _Writer()
    first, equal = replace(GOOD), replace(GOOD)
    assert forms.form(first, write) == forms.form(equal, write) == "<p1>" and write.calls == 1
    # Bounded like the identity table, and nothing kept when the write fails.
    for i in range(10):
        forms.form(replace(GOOD, peer_id=f"p{i}"), write)
    assert 0 < len(forms._values) <= 4
    with pytest.raises(ValueError):
        forms.form(PeerInfo(), write)
    assert PeerInfo() not in forms._values


def test_objects_not_keyed_by_value_never_find_an_equal_valid_form() -> None:
    # A port of True equals a port of 1 but is invalid: it must be written (and refused).
    valid = PeerAddress(ip="192.0.2.1", port=1)
    invalid = PeerAddress(ip="192.0.2.1", port=True)
    assert valid == invalid and keyed_by_value(valid) and not keyed_by_value(invalid)
    forms: IdentityForms[PeerAddress, str] = IdentityForms(4, by_value=keyed_by_value)

    def write(address: PeerAddress) -> str:
        if type(address.port) is not int:
            raise ValueError("port is not an integer")
        return f"{address.ip}:{address.port}"

    assert forms.form(valid, write) == "192.0.2.1:1"
    with pytest.raises(ValueError):
        forms.form(invalid, write)


def test_identity_forms_keep_nothing_when_writing_fails_and_are_bounded() -> None:
    forms: IdentityForms[PeerInfo, str] = IdentityForms(3)
    write = _Writer()
    bad = PeerInfo()
    with pytest.raises(ValueError):
        forms.form(bad, write)
    assert forms.kept(bad) is None and len(forms) == 0
    entries = [replace(GOOD, peer_id=f"p{i}") for i in range(10)]
    assert forms.forms(entries, write) == [f"<p{i}>" for i in range(10)]
    assert 0 < len(forms) <= 3
    with pytest.raises(ValueError):
        IdentityForms(0)


def test_both_keepers_are_kept_forms() -> None:
    keepers: list[KeptForms[PeerInfo, str]] = [_slot(0), IdentityForms(2)]
    for keeper in keepers:
        assert keeper.forms([GOOD], _Writer()) == ["<p1>"]
