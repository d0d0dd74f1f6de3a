"""Container HEALTHCHECK probe: ``python -m app.healthcheck`` exits 0 when /api/health answers 200.

The slim image has no curl; a stdlib request costs one short-lived interpreter. It probes liveness, not
readiness: Docker restarts unhealthy containers, and a database outage must not restart every task.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("PORT", "8000")
    url = f"http://127.0.0.1:{port}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT", "3"))) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
