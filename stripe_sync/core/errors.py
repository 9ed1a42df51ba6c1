"""Errors users act on, as opposed to bugs."""


class ConfigError(Exception):
    """Missing or wrong configuration: one sentence saying what is wrong and what to set.

    Raised before any write; the CLI prints it without a traceback.
    """
