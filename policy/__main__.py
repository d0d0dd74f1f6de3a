"""CrossGuard entry point: the CLI runs `python -m pulumi.policy <engine> .` with the working directory set to
policy/, which executes this file. Constructing PolicyPack starts the analyzer's gRPC server and blocks, so
it happens only here; the rules live in infra/policy/ where tests and the offline plan import them.
"""

import sys
from pathlib import Path

_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)  # cwd is policy/, so `import infra` needs the root (as infra/__main__.py)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from infra.policy.pack import PACK_NAME, build_policies, settings_from_environment  # noqa: E402

settings = settings_from_environment()
PolicyPack(
    name=PACK_NAME,
    policies=build_policies(settings),
    enforcement_level=EnforcementLevel.ADVISORY,
    description=f"FSBP-mapped guardrails for shipyard (levels of tier {settings.tier!r}).",
)
