"""Reading deploy/ as the tools that use it would: the Dockerfile's stages, the scripts it ships."""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@dataclass
class Stage:
    """One FROM ... AS name stage: its base and its instructions, continuations joined."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [rest for word, rest in self.instructions if word == keyword]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON array of the stage's last `keyword` instruction (HEALTHCHECK: after its CMD)."""
        text = self.arguments(keyword)[-1]
        return list(json.loads(text[text.index("["):]))


def dockerfile_stages(path: Path = DEPLOY / "Dockerfile") -> list[Stage]:
    """The stages in order; the last is what `docker build` without --target makes."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(name.strip(), base.strip()))
        elif stages:
            stages[-1].instructions.append((word.upper(), rest.strip()))
    return stages


def load_script(relative: str) -> ModuleType:
    """A script of deploy/ (not a package) imported as a module, to test its functions."""
    path = DEPLOY / relative
    spec = importlib.util.spec_from_file_location(f"deploy_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def venv_tool(name: str) -> str:
    """A command the test extra installs beside this interpreter (hadolint, kubectl)."""
    import sys

    tool = Path(sys.executable).parent / name
    assert tool.exists(), f"{tool} is missing: `make install` installs the test extra"
    return str(tool)
