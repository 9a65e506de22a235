"""The ``log`` sink: one structured line per event on the ``llmcore.metrics`` logger.

Options (``metrics.log``): ``format`` ``kv`` (default, ``key=value`` pairs) or ``json``;
``level`` (default ``info``). Fields that are ``None`` are left out. The event's message is
already redacted by :meth:`MetricsEvent.to_dict`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import attrs

from ..errors import ConfigError
from ..metrics import MetricsEvent, MetricsSink

LOGGER = "llmcore.metrics"


@attrs.define
class LogOptions:
    format: str = "kv"
    level: str = "info"


def _kv(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    if not text or any(c in text for c in ' "=\n'):
        return json.dumps(text)
    return text


class LogSink(MetricsSink):
    type_name: ClassVar[str] = "log"
    Options: ClassVar[type | None] = LogOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        if self.opts.format not in ("kv", "json"):
            raise ConfigError(f"metrics.log.format: must be kv or json, not {self.opts.format!r}")
        level = logging.getLevelName(str(self.opts.level).upper())
        if not isinstance(level, int):
            raise ConfigError(
                f"metrics.log.level: unknown level {self.opts.level!r}",
                hint="one of: debug, info, warning, error",
            )
        self.level = level
        self.logger = logging.getLogger(LOGGER)

    def format(self, event: MetricsEvent) -> str:
        d = {k: v for k, v in event.to_dict().items() if v is not None}
        if self.opts.format == "json":
            return json.dumps(d, sort_keys=False)
        return " ".join(f"{k}={_kv(v)}" for k, v in d.items())

    def emit(self, event: MetricsEvent) -> None:
        if self.logger.isEnabledFor(self.level):
            self.logger.log(self.level, "%s", self.format(event))
