#!/usr/bin/env bash
# The whole test job: lint, format, generated-file checks, the architecture guards, then all tests.
# The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
uv run ruff check .
uv run ruff format --check .
uv run xf-repotools all
# Each member declares what it imports (deptry), the layer order holds (import-linter), types check (basedpyright).
uv run python ci/deptry_members.py
uv run lint-imports
bash ci/typecheck.sh
# Every member builds a wheel on its own.
wheels=$(mktemp -d)
uv build --all-packages --wheel -q --out-dir "$wheels"
rm -rf "$wheels"
# The CI `checks` job (ci/jobs.py) runs the steps above only; the test jobs run pytest themselves.
[[ "${XF_CHECKS_ONLY:-}" == 1 ]] && exit 0
uv run pytest -q -p no:cacheprovider --durations=15 "$@"
