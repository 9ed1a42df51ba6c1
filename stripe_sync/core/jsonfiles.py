"""JSON state files that a crash can't leave half-written."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: Path, data: object) -> None:
    """Write `data` to `path` atomically: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    tmp.replace(path)


def read_json(path: Path) -> object | None:
    return json.loads(path.read_text()) if path.exists() else None
