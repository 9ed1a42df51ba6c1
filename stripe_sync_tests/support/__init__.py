"""Support code for the tests: look-alikes, proxies and shared helpers (no tests)."""
