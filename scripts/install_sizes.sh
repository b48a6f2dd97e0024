#!/usr/bin/env bash
# Measure what an install costs on disk, as a device installs: build the wheel once, then fresh
# virtual environments with the wheel and one interpreter each (and one with every extra), sized
# with du. Writes benchmarks/install_sizes.json, which scripts/update_readme.py puts into the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_QUIET=1
# the wheel as docs/install.md builds it: python -m build (the sdist, then the wheel from it)
$python -m venv "$work/builder" && "$work/builder/bin/pip" install build >/dev/null
"$work/builder/bin/python" -m build --outdir "$work/dist" . >/dev/null
wheel=$(ls "$work"/dist/*.whl)
entries=()
for extra in litert onnx tflite-runtime all; do
  $python -m venv "$work/$extra"
  "$work/$extra/bin/pip" install "$wheel[$extra]" >/dev/null
  site=$("$work/$extra/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  # what the project's extra added, without pip and setuptools that every venv has
  pip_size=$(du -sk "$site"/pip "$site"/pip-* "$site"/setuptools* 2>/dev/null | awk '{s += $1} END {print s + 0}')
  total=$(du -sk "$site" | cut -f1)
  entries+=("\"$extra\": $(( (total - pip_size) / 1024 ))")
  echo "$extra: $(( (total - pip_size) / 1024 )) MiB" >&2
done
mkdir -p benchmarks
printf '{"date": "%s", "python": "%s", "machine": "%s", "wheel": "%s", "wheel_bytes": %d, "mib": {%s}}\n' \
  "$(date -u +%FT%TZ)" "$($python -c 'import platform; print(platform.python_version())')" "$(uname -m)" \
  "$(basename "$wheel")" "$(stat -c %s "$wheel")" "$(IFS=,; echo "${entries[*]}")" > benchmarks/install_sizes.json
cat benchmarks/install_sizes.json
