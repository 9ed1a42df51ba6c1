"""JSON state files that a crash can't leave half-written."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path


def write_json(path: Path, data: object) -> None:
    """Write `data` to `path` atomically: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name of its own: two writers of one file never share (or steal) it.
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False
    ) as tmp:
        tmp.write(json.dumps(data, default=str))
    Path(tmp.name).replace(path)


def read_json(path: Path) -> object | None:
    return json.loads(path.read_text()) if path.exists() else None
