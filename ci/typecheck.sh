#!/usr/bin/env bash
# Type checks with basedpyright (settings and per-module relaxations: [tool.basedpyright] in the root pyproject).
#
#   bash ci/typecheck.sh           every member's src, then the public API of each package in VERIFIED
#   bash ci/typecheck.sh FILE...   (pre-commit) those files, then the public API of the packages they are in;
#                                  everything when the root pyproject.toml is among them
#
# The public-API check is `basedpyright --verifytypes PKG --ignoreexternal`: every symbol a user can import
# from PKG's public modules has a declared, unambiguous type.
set -euo pipefail
cd "$(dirname "$0")/.."
VERIFIED=(xf_core xf_tokenize xf_load xf_quant xf_train xf_parallel xf_pipeline xf_repotools)

packages=("${VERIFIED[@]}")
if (($#)) && [[ " $* " != *" pyproject.toml "* ]]; then  # the root pyproject holds the settings: check all
    files=()
    packages=()
    for file in "$@"; do
        [[ $file == packages/*/src/*.py ]] || continue
        files+=("$file")
        module=${file#packages/*/src/}
        module=${module%%/*}
        for verified in "${VERIFIED[@]}"; do
            [[ $module == "$verified" && " ${packages[*]} " != *" $module "* ]] && packages+=("$module")
        done
    done
    ((${#files[@]})) || exit 0
    uv run basedpyright --level error "${files[@]}"
else
    uv run basedpyright --level error
fi
for package in "${packages[@]}"; do
    # The report lists every symbol; on success show the score, on failure the whole report.
    if ! report=$(uv run basedpyright --verifytypes "$package" --ignoreexternal); then
        echo "$report"
        echo "the public API of $package is not fully typed (above: each symbol and what it lacks)"
        exit 1
    fi
    echo "$package: $(grep 'completeness score' <<<"$report")"
done
