"""The runtime quiets the cyclic garbage collector when it starts (bootstrap.quiet_collector).

Run in a fresh interpreter: the collector's settings belong to the whole process, and this
test process's may have been changed by an earlier test's runtime already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tasktrail import bootstrap

SCRIPT = """
import gc, json, sys
from tasktrail import bootstrap
from tasktrail.settings import Settings

container = bootstrap.build(Settings(database_url=sys.argv[1]))
runtime = bootstrap.build_runtime(container, workers=1)
before = {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
runtime.start()
try:
    after = {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
    bootstrap.quiet_collector()  # a second runtime in the process changes nothing more
    again = {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
finally:
    runtime.stop()
print(json.dumps({"before": before, "after": after, "again": again}))
"""


def test_runtime_start_freezes_start_up_objects_and_raises_the_threshold(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasktrail.db'}"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, url], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["before"]["threshold"] != bootstrap.COLLECT_AFTER_ALLOCATIONS
    assert figures["before"]["frozen"] == 0
    assert figures["after"]["threshold"] == bootstrap.COLLECT_AFTER_ALLOCATIONS
    # What was alive at start-up (modules, the container) is out of the collector's sight.
    assert figures["after"]["frozen"] > 10_000
    assert figures["again"] == figures["after"]
