"""Encoded forms: what a codec wrote for an immutable object, kept for the next time it writes it.

The tracker lists the same peer-list entries and addresses answer after answer.  Writing one
(validating every field, escaping, formatting) costs far more than finding what was written
for it before, and the objects are immutable, so what was written for an object stays right
for as long as the object lives.  One small interface, :class:`KeptForms`, gives a codec the
form it kept for an object, written and kept on first use::

    fragment = ENTRY_FORMS.form(entry, write_entry)        # write_entry(entry) only once
    fragments = ENTRY_FORMS.forms(entries, write_entry)    # the same for a whole list

``write`` validates as it writes: when it raises, nothing is kept and the next call raises
again.  Two keepers implement the interface:

* :class:`FormSlot`: the form lives in the object itself, in a slot of :class:`EncodedForms`
  (the base class of the messages the tracker lists, :class:`~ppsp.wire.common.PeerInfo`).
  Reading it touches memory the encoder reads anyway; the slots are not dataclass fields, so
  equality, hashing, ``repr``, ``replace`` and copies ignore them.  A codec claims a slot once,
  by name (:func:`claim_form_slot`): this module knows nothing of the codecs.
* :class:`IdentityForms`: for objects with no slot to spare (a slot would cost every stored
  :class:`~ppsp.wire.common.PeerAddress` 16 bytes), a bounded table by identity.  It holds the
  object, so an identity is never reused while its entry exists; it is emptied when full.

Pure Python, no I/O; the keepers are not thread-safe (each tracker process writes from its
event loop only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "EncodedForms",
    "FormSlot",
    "IdentityForms",
    "KeptForms",
    "ShapeForms",
    "claim_form_slot",
]

_O = TypeVar("_O")
_F = TypeVar("_F")


class KeptForms(Protocol[_O, _F]):
    """Where a codec keeps the forms it wrote for immutable objects."""

    def form(self, obj: _O, write: Callable[[_O], _F]) -> _F:
        """The form kept for ``obj``; on first use ``write(obj)``, kept unless it raises."""
        ...

    def forms(self, objs: Iterable[_O], write: Callable[[_O], _F]) -> list[_F]:
        """:meth:`form` of each object, in order."""
        ...

    def kept(self, obj: _O) -> _F | None:
        """The form kept for ``obj``, or None (nothing written yet, or the write failed)."""
        ...


class EncodedForms:
    """Base class of a frozen message class whose objects keep encoded forms (see the module).

    Two slots, each claimed by one codec (:func:`claim_form_slot`).  An unclaimed or unwritten
    slot is unset (reading it raises AttributeError); only :class:`FormSlot` reads and writes
    them.
    """

    __slots__ = ("_form_0", "_form_1")


_UNCLAIMED = list(EncodedForms.__slots__)
_OWNERS: dict[str, str] = {}
"""Slot name -> the name of the codec that claimed it."""


_H = TypeVar("_H", bound="EncodedForms")


class FormSlot(Generic[_H, _F]):
    """One codec's slot in every :class:`EncodedForms` object (:class:`KeptForms`).

    ``_H`` is the class of the objects the codec keeps forms in, ``_F`` the type of the forms.
    """

    __slots__ = ("_write", "name", "owner")

    def __init__(self, name: str, owner: str) -> None:
        self.name = name
        self.owner = owner
        # The slot's own setter: a frozen dataclass refuses setattr, and nothing else writes
        # these slots.
        self._write: Callable[[_H, _F], None] = vars(EncodedForms)[name].__set__

    # An unset slot is read with getattr's default, not by catching AttributeError: a
    # caught exception costs about three times the read (1.6 against 0.6 us), and at
    # 100,000 peers most listed entries are new ones (issue 16).  No form is None.

    def form(self, obj: _H, write: Callable[[_H], _F]) -> _F:
        """The form kept in ``obj``; on first use ``write(obj)``, kept unless it raises."""
        form: _F | None = getattr(obj, self.name, None)
        if form is None:
            form = write(obj)
            self._write(obj, form)
        return form

    def forms(self, objs: Iterable[_H], write: Callable[[_H], _F]) -> list[_F]:
        """:meth:`form` of each object, in order (one call for a whole peer list)."""
        name = self.name
        out: list[_F] = []
        append = out.append
        for obj in objs:
            form: _F | None = getattr(obj, name, None)
            if form is None:
                form = write(obj)
                self._write(obj, form)
            append(form)
        return out

    def kept(self, obj: _H) -> _F | None:
        """The form kept in ``obj``, or None."""
        return getattr(obj, self.name, None)

    def __repr__(self) -> str:
        return f"FormSlot({self.name!r}, owner={self.owner!r})"


def claim_form_slot(owner: str) -> FormSlot[Any, Any]:
    """A slot of :class:`EncodedForms` for the codec named ``owner``, once per codec.

    The caller states the types (``FormSlot[PeerInfo, str]``).  Raises RuntimeError when every
    slot is taken: a further codec needs a further slot in :class:`EncodedForms`.
    """
    if owner in _OWNERS.values():
        raise RuntimeError(f"{owner} already holds a slot of EncodedForms")
    if not _UNCLAIMED:
        raise RuntimeError(f"no slot of EncodedForms left for {owner}: add one")
    name = _UNCLAIMED.pop(0)
    _OWNERS[name] = owner
    return FormSlot(name, owner)


class IdentityForms(Generic[_O, _F]):
    """Forms of objects without slots, by identity, at most ``limit`` (:class:`KeptForms`).

    An entry holds its object, so no other object can have that identity while the entry
    exists.  The table is emptied when full: a bound, not an eviction policy.

    With ``by_value``, an object met for the first time is also looked up by value: equal
    objects (say, the address a peer is seen at, built anew for each of its requests) share
    one form.  ``by_value(obj)`` says whether ``obj`` may be keyed by its value: it must be
    False for an object equal to a valid one that the writer would refuse (``port=True``
    equals ``port=1``), so that a refused object never finds the form of a valid one.
    """

    __slots__ = ("_by_value", "_table", "_values", "limit")

    def __init__(self, limit: int, *, by_value: Callable[[_O], bool] | None = None) -> None:
        if limit < 1:
            raise ValueError("an identity table holds at least one form")
        self.limit = limit
        self._table: dict[int, tuple[_O, _F]] = {}
        self._by_value = by_value
        self._values: dict[_O, _F] = {}

    def form(self, obj: _O, write: Callable[[_O], _F]) -> _F:
        """The form kept for ``obj``; on first use ``write(obj)``, kept unless it raises."""
        entry = self._table.get(id(obj))
        if entry is not None:
            return entry[1]
        keyed = self._by_value is not None and self._by_value(obj)
        form = self._values.get(obj) if keyed else None
        if form is None:
            form = write(obj)
            if keyed:
                if len(self._values) >= self.limit:
                    self._values.clear()
                self._values[obj] = form
        if len(self._table) >= self.limit:
            self._table.clear()
        self._table[id(obj)] = (obj, form)
        return form

    def forms(self, objs: Iterable[_O], write: Callable[[_O], _F]) -> list[_F]:
        """:meth:`form` of each object, in order."""
        return [self.form(obj, write) for obj in objs]

    def kept(self, obj: _O) -> _F | None:
        """The form kept for ``obj``, or None."""
        entry = self._table.get(id(obj))
        return None if entry is None else entry[1]

    def templated(
        self, obj: _O, template: Callable[[_O], _F | None], write: Callable[[_O], _F]
    ) -> _F:
        """The form kept for ``obj`` by identity; else ``template(obj)`` (a form written from
        a template of ``obj``'s shape, checked once for the shape; None when there is none),
        kept by identity; else :meth:`form` with the general writer ``write``."""
        entry = self._table.get(id(obj))
        if entry is not None:
            return entry[1]
        form = template(obj)
        if form is None:
            return self.form(obj, write)
        self.keep(obj, form)
        return form

    def keep(self, obj: _O, form: _F) -> None:
        """Keep ``form``, written and checked by the caller, as the form of ``obj`` (by
        identity only: looking it up by value costs more than a template writing it)."""
        if len(self._table) >= self.limit:
            self._table.clear()
        self._table[id(obj)] = (obj, form)

    def __len__(self) -> int:
        return len(self._table)


class ShapeForms(Generic[_O, _F]):
    """What a codec writes for every address of one *shape* (the fields besides its IP
    address and port: :func:`~ppsp.wire.common.template_shape`), checked once for the shape
    and kept, at most ``limit`` shapes (the table is emptied when full: a bound)."""

    __slots__ = ("_table", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._table: dict[tuple[object, ...], _F] = {}

    def form(self, shape: tuple[object, ...], obj: _O, write: Callable[[_O], _F]) -> _F | None:
        """The form kept for ``shape``; on first use ``write(obj)`` (``obj`` of that shape),
        kept unless it raises.  None when the shape holds a field no valid address holds
        (unhashable): the caller's general writer decides."""
        try:
            form = self._table.get(shape)
        except TypeError:
            return None
        if form is None:
            form = write(obj)
            if len(self._table) >= self.limit:
                self._table.clear()
            self._table[shape] = form
        return form
