# Two commands do all set-up on a fresh machine: `make plan` and `make test`.
# The venv is (re)built only when a requirements file changed since the last install.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STACK  ?= staging
REQS   := requirements.txt requirements-dev.txt lambdas/requirements.txt app/requirements.txt app/requirements.in policy/requirements.txt
STAMP  := $(VENV)/.installed

.PHONY: plan test lint typecheck pytest schema runbooks bench clean deploy-frontend rds-ca

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

## make plan [STACK=prod] [ARGS="--json"]: offline plan of a stack, no credentials needed
plan: $(STAMP)
	$(PY) -m infra.plan --stack $(STACK) $(ARGS)

## make test: ruff, mypy and the whole pytest suite
test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## make schema: regenerate docs/stack-config.schema.json from infra/config.py
schema: $(STAMP)
	$(PY) -m infra.config --schema > docs/stack-config.schema.json

## make runbooks: regenerate docs/runbooks/*.md from the alarm catalogue (infra/aws/alarms.py)
runbooks: $(STAMP)
	$(PY) -m infra.aws.alarms --write-runbooks

## make rds-ca: fetch AWS's RDS CA bundle into lambdas/shared/ (checked; needs the internet; run before pulumi up)
rds-ca: $(STAMP)
	$(PY) -m infra.rds_ca $(ARGS)

## make bench: every benchmark under bench/ (prints ratios; not part of make test)
bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## make deploy-frontend STACK=prod DIST=web/dist: upload a built SPA (changed files only) and refresh CloudFront
## Needs the Pulumi CLI logged in to the stack's backend and AWS credentials; see README "Deploying the frontend".
deploy-frontend: $(STAMP)
	@test -n "$(DIST)" || { echo "usage: make deploy-frontend STACK=<stack> DIST=<folder holding the built index.html>" >&2; exit 2; }
	$(PY) scripts/deploy_frontend.py --dist "$(DIST)" \
		--bucket "$$(pulumi stack output frontendBucket --stack $(STACK))" \
		--distribution-id "$$(pulumi stack output cloudfrontDistributionId --stack $(STACK))" \
		--immutable-paths "$$(pulumi stack output frontendImmutablePaths --json --stack $(STACK))" \
		--region "$$(pulumi stack output region --stack $(STACK))" $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
