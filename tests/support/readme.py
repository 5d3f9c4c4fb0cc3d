"""The README's walkthrough and snippet, as its tests read them."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
WALKTHROUGH_HEADING = "## Five minutes with erp-sync"


def section(heading: str) -> str:
    """The README's text from a heading to the next heading of the same level."""
    level = heading.split(" ")[0]
    start = README.index(heading + "\n")
    end = README.find(f"\n{level} ", start + len(heading))
    return README[start:end if end != -1 else len(README)]


def walkthrough_lines() -> list[str]:
    """Every command line of the walkthrough's shell block, as printed."""
    [block] = re.findall(r"```bash\n(.*?)```", section(WALKTHROUGH_HEADING), flags=re.DOTALL)
    return [line for line in block.splitlines() if line.strip()]


def promised(line: str) -> list[str]:
    """What a line's comment promises it prints: the `quoted` fragments after its `#`."""
    comment = line.split("  # ", 1)[1] if "  # " in line else ""
    return re.findall(r"`([^`]+)`", comment)


def is_definition(line: str) -> bool:
    """A line that later lines need (a function, the sourced settings), not a step."""
    return line.startswith("source ") or re.match(r"^\w+\(\) \{", line) is not None


def order_snippet() -> str:
    """The README's one Python block: the storefront placing an order."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert len(blocks) == 1, "the README shows one Python snippet: the storefront's publish_order"
    return blocks[0]
