"""Text from elsewhere (the environment, netlab's output) made safe to send and to show."""

from __future__ import annotations

import re
import unicodedata

# ANSI escape sequences (colours, cursor moves): shown raw, they would garble a status line.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def printable(text: str) -> str:
    """`text` without ANSI escape sequences, other control characters turned into spaces, trimmed."""
    text = _ANSI_ESCAPE.sub("", text)
    return "".join(" " if unicodedata.category(char) == "Cc" else char for char in text).strip()


def shortened(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
