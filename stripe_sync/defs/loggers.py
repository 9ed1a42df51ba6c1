"""Run logs: to the console at a chosen level and to a file, keys redacted from both."""

import logging
import sys
from pathlib import Path

import dagster as dg

from stripe_sync.core.secrets import RedactingFilter


@dg.logger(
    config_schema={
        "log_level": dg.Field(
            str, default_value="INFO", description="DEBUG, INFO, WARNING or ERROR."
        ),
        "log_file": dg.Field(
            str, default_value="logs/stripe-sync.log", description="Also append logs here."
        ),
        "console": dg.Field(
            bool, default_value=True, description="Log to the console (stderr) as well."
        ),
    },
    description="Console and file logging with Stripe and Supabase keys redacted.",
)
def console_and_file(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    level = {"WARN": "WARNING"}.get(config["log_level"].upper(), config["log_level"].upper())
    logger = logging.Logger("stripe_sync", level=level)  # noqa: LOG001 - one per run, not global
    log_file = Path(config["log_file"])
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [logging.FileHandler(log_file)]
    if config["console"]:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
        logger.addHandler(handler)
    return logger
