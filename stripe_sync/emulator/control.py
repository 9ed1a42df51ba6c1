"""A client for the emulator's control API (`/_emulator/...`), for tests and benchmarks."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


class EmulatorControl:
    """Reset, configure and read the request log of a running emulator."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    def reset(self) -> None:
        self._call("POST", "reset")

    def configure(self, **knobs: Any) -> dict:
        """Change some knobs (see `EmulatorConfig`); returns the whole configuration."""
        return self._call("POST", "config", knobs)

    def config(self) -> dict:
        return self._call("GET", "config")

    def requests(self) -> list[dict]:
        """Every Stripe API request so far, oldest first."""
        return self._call("GET", "requests")["requests"]

    def save(self) -> None:
        self._call("POST", "save")

    def _call(self, method: str, action: str, payload: dict | None = None) -> dict:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            f"{self.base_url}/_emulator/{action}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
