"""Pulumi program entry (Pulumi.yaml `main: infra/`).

The CLI runs this file with the working directory set to infra/ and without the project root on sys.path,
so `import infra...` would fail; putting the root first makes the same absolute imports work under the CLI,
under `python -m infra.plan`, and under the test harness (which runs this file exactly the CLI's way).
"""

import sys
from pathlib import Path

_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)

from infra.program import main  # noqa: E402  (needs the path above)

main()
