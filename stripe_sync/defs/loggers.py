"""Run logs: to the console at a chosen level and to a file, keys redacted from both."""

import logging
import sys
from pathlib import Path

import dagster as dg
from pydantic import Field

from stripe_sync.core.secrets import RedactingFilter


class LogOptions(dg.Config):
    """Where one run's logs go (run config `loggers: console: config:`)."""

    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_file: str = Field(default="logs/stripe-sync.log", description="Also append logs here.")
    console: bool = Field(default=True, description="Log to the console (stderr) as well.")

    @classmethod
    def given(cls, **options: object) -> "LogOptions":
        """The options a command was given; one it was not (None) keeps its default."""
        return cls(**{name: value for name, value in options.items() if value is not None})

    def run_config(self) -> dict:
        """The run config that gives these options to the logger."""
        return {"loggers": {"console": {"config": self.model_dump()}}}


@dg.logger(
    config_schema=LogOptions.to_config_schema(),
    description="Console and file logging with Stripe and Supabase keys redacted.",
)
def console_and_file(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = LogOptions(**init_context.logger_config)
    level = {"WARN": "WARNING"}.get(config.log_level.upper(), config.log_level.upper())
    logger = logging.Logger("stripe_sync", level=level)  # noqa: LOG001 - one per run, not global
    log_file = Path(config.log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [logging.FileHandler(log_file)]
    if config.console:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
        logger.addHandler(handler)
    return logger
