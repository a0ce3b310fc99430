#!/usr/bin/env bash
# The kernel tests again on ipykernel 6 / IPython 8, in a venv of their own (.venv-ipykernel6).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-ipykernel6/bin/python ] || python3 -m venv .venv-ipykernel6
.venv-ipykernel6/bin/pip install -q 'ipykernel>=6.11,<7' 'ipython>=8.3,<9' -e '.[notebook,test]'
.venv-ipykernel6/bin/python -c "import ipykernel, IPython; print('ipykernel', ipykernel.__version__, 'IPython', IPython.__version__)"
set +e
.venv-ipykernel6/bin/python -m pytest -p no:cacheprovider -W error::ResourceWarning \
    -m "not local_model" tests/test_kernel_chat.py tests/test_fault_campaign.py tests/test_notebooks.py \
    tests/test_terminal.py tests/test_load.py "$@"
rc=$?
set -e
[ "$rc" = 5 ] && { echo "pytest collected no tests: that is a failure" >&2; exit 1; }
exit "$rc"
