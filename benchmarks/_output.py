"""What every benchmark script does with its summary: print it as JSON and, with --out, write it too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(summary: dict[str, Any], out: Path | None) -> int:
    text = json.dumps(summary, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
    return 0
