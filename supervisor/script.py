"""Which script an invocation runs: an explicit base64 text, the event's, or ``init_script``."""
from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, Mapping, Optional

from .config import FunctionConfig
from .errors import ConfigError
from .events import script_from_event

__all__ = ["resolve_script"]


def resolve_script(event: Mapping[str, Any], config: FunctionConfig, *,
                   encoded: Optional[str] = None, encoded_name: str = "SCRIPT") -> str:
    """The script text, first found: ``encoded`` (base64, e.g. SCAR's ``SCRIPT`` variable),
    the event's base64 ``script`` field, the configuration's ``init_script`` file."""
    if encoded is not None and encoded.strip():
        try:
            return base64.b64decode("".join(encoded.split()), validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise ConfigError([f"{encoded_name}: not base64 of a UTF-8 script ({exc})"]) from exc
    from_event = script_from_event(event)
    if from_event is not None:
        return from_event
    if not config.init_script:
        raise ConfigError([f"init_script: no script to run; set init_script in the function "
                           f"configuration, pass a base64 'script' in the event, or set "
                           f"{encoded_name} (base64)"])
    try:
        return Path(config.init_script).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"init_script: cannot read {config.init_script}: {exc}"]) from exc
