"""`python -m infra.config --schema` prints the JSON Schema of a stack file."""

from infra.config.schema import main

raise SystemExit(main())
