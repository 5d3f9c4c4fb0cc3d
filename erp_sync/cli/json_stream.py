"""JSON documents printed as they are read: a list of a million rows never held whole."""
from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

_NOTHING = object()
# The encoder yields a piece of text for each key, value and bracket: written to stdout a few
# thousand at a time, not one call each.
_PIECES_A_WRITE = 4096


class StreamedList(list[Any]):
    """An iterable that `json.dump` writes as a JSON array, item by item as they come.

    The encoder asks a list only whether it is empty, then iterates it: this one answers by taking
    its first item, which it gives first.
    """

    def __init__(self, items: Iterable[Any]) -> None:
        super().__init__()
        self._items = iter(items)
        self._first: Any = _NOTHING

    def __len__(self) -> int:
        if self._first is _NOTHING:
            self._first = next(self._items, _NOTHING)
        return 0 if self._first is _NOTHING else 1

    def __iter__(self) -> Iterator[Any]:
        if len(self):
            yield self._first
            yield from self._items


def print_json(document: dict[str, Any]) -> None:
    """`document` on stdout as indented JSON; each iterator value (not a list, str or dict) as an array, streamed."""
    streamed = {key: StreamedList(value) if isinstance(value, Iterator) else value for key, value in document.items()}
    pieces = json.JSONEncoder(indent=2).iterencode(streamed)
    while batch := list(itertools.islice(pieces, _PIECES_A_WRITE)):
        sys.stdout.write("".join(batch))
    print(flush=True)
