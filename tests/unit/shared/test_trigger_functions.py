"""The trigger bodies that migrations share: what a released revision wrote never changes."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from erp_sync.shared.migrations import trigger_functions

# sha256 (first 16 hex digits) of each body as trigger_function renders it, and of each whole
# function statement as it is: a change to one or to the rendering would rewrite what a released
# revision puts in a database. A new revision adds a new constant and a line here; it never edits one.
RELEASED = {
    "FIGURE_RELEASES_BY_SYNCED_AT_0002": "c0deeedd810b814a",
    "FIGURE_RELEASES_COUNTED_0010": "01a183d9e4a4d4d2",
    "RECEIPT_RELEASES_COUNTED_0010": "6c5255260941b7f4",
    "FIGURE_RELEASES_COUNTED_IF_HELD_0012": "cc30c4634af7704e",
    "RELEASE_COUNTED_HOLDS_0010": "7fe6ed872789d58d",
    "RELEASE_COUNTED_HOLDS_0013": "daebb62eb562f209",
    "RELEASE_COUNTED_HOLDS_0015": "3d80add95f7e0646",
    "RELEASE_COUNTED_HOLDS_0016": "f703ae67418c84f9",
    "RELEASE_COUNTED_HOLDS_0018": "0e9cdfc329e32f65",
}
VERSIONS = Path(trigger_functions.__file__).parent / "versions"


def rendered(name: str) -> str:
    text = getattr(trigger_functions, name)
    if not text.lstrip().startswith("CREATE"):
        text = trigger_functions.trigger_function("release_holds", text)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_the_released_bodies_render_as_they_were_released():
    bodies = sorted(name for name in vars(trigger_functions) if name.isupper() and not name.startswith("_"))

    assert {name: rendered(name) for name in bodies} == RELEASED


def test_each_body_is_named_after_a_revision_that_uses_it():
    revisions = {path.name[:4]: path.read_text() for path in VERSIONS.glob("[0-9]*.py")}

    assert [name for name in RELEASED if name not in revisions.get(re.findall(r"\d{4}$", name)[0], "")] == []
