"""Header fields of an HTTP message, looked up in any case (the client's answers and the
server's requests share this one class).

Layer: I/O (see :mod:`ppsp.http`): the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar, overload

__all__ = ["Headers"]

_D = TypeVar("_D")


class Headers(Mapping[str, str]):
    """Header fields: looked up in any case; a name given twice maps to its first value
    (:meth:`getall` gives every one)."""

    __slots__ = ("_first", "fields")

    def __init__(self, fields: Sequence[tuple[str, str]]) -> None:
        self.fields = tuple(
            (name if name.islower() else name.lower(), value) for name, value in fields
        )
        """Every field in order, names in lower case."""
        first: dict[str, str] = {}
        for name, value in self.fields:
            first.setdefault(name, value)
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: _D) -> str | _D: ...

    def get(self, name: str, default: object = None) -> object:
        """The first value of the field named ``name`` (any case), or ``default`` (one dict
        lookup: no exception for a missing field, as ``Mapping.get`` would raise and catch)."""
        return self._first.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def with_field(self, name: str, value: str, index: int) -> Headers:
        """These fields with one more, ``name`` (in lower case, not among them) at ``index``."""
        fields = self.fields
        added = Headers.__new__(Headers)
        added.fields = (*fields[:index], (name, value), *fields[index:])
        first = dict(self._first)
        first.setdefault(name, value)
        added._first = first
        return added

    def getall(self, name: str) -> list[str]:
        """Every value of the fields named ``name`` (any case), in order."""
        wanted = name.lower()
        return [value for field, value in self.fields if field == wanted]

    def __repr__(self) -> str:
        return f"Headers({list(self.fields)!r})"
