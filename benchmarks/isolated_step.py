"""Run one benchmark step in a fresh Python process, so its peak RSS is its own.

The step is a script that prints one JSON line last (seconds, peak_rss_mb, ...).
"""

from __future__ import annotations

import json
import subprocess
import sys


def run_isolated(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
