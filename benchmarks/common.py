"""What every benchmark script records about its run, and how it writes its results."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path


def run_meta(script: str, argv: list[str] | None, **extra: object) -> dict:
    """When, where and by which command a benchmark ran (plus any `extra` facts)."""
    arguments = argv if argv is not None else sys.argv[1:]
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "command": f"python benchmarks/{script} " + " ".join(arguments),
        **extra,
    }


def write_results(out: Path, stem: str, payload: dict, markdown: str) -> None:
    """`stem`.json (everything measured) and `stem`.md (the readable report) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    (out / f"{stem}.md").write_text(markdown)
    print(f"wrote {out / f'{stem}.md'}")


def available_datasets(option: str) -> list[str]:
    """The data sets named in a comma-separated `option` that exist in the data folder; says which
    it skips (a benchmark reads the public data sets from ../shared/data or SHELFWISE_DATA_DIR)."""
    from shelfwise.data.adapters import data_dir

    names = [d for d in option.split(",") if d]
    missing = [d for d in names if not (data_dir() / d).is_dir()]
    if missing:
        print(f"skipped: data set(s) {missing} not found in {data_dir()} (set SHELFWISE_DATA_DIR)")
    return [d for d in names if d not in missing]
