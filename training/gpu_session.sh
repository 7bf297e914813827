#!/usr/bin/env bash
# One training session on a lent GPU machine (PyTorch with CUDA, numpy; no GIS libraries, no validation data).
# Prepared here with `make gpu-pack` (the packed caches and the ImageNet-initialised weights in .gpu/, about
# 30 MB), run there from the repository root as
#     bash training/gpu_session.sh OUT_DIR [BUILDINGS_MINUTES] [ROADS_MINUTES (0: buildings only)]
# It trains the building and the road model side by side on the one GPU (snapshots of the weights, no validation;
# roads: the last weights only, as its recipe has no validation split),
# measures the building network's device-only throughput, and leaves in OUT_DIR what comes back: the snapshots
# in pairs (tar), the logs. Back here, `training.select` validates the snapshots and exports the best.
set -uo pipefail
out=${1:?OUT_DIR}; buildings_min=${2:-7}; roads_min=${3:-5}
export PYTHONUNBUFFERED=1 PYTHONPATH=.
PYTHON=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
mkdir -p "$out" /tmp/runs
"$PYTHON" -m training.train --task buildings --arch effnet_lite0 --cache .gpu/cache --init .gpu/init.pt \
    --minutes "$buildings_min" --snapshot-every-minutes "$(python3 -c "print($buildings_min / 4)")" \
    --batch 32 --lr 1e-3 --warmup-steps 300 --contact-weight 5 --small-weight 3 --ema 0.998 --threads 6 \
    --seed 21 --run-dir /tmp/runs/buildings > /tmp/runs/buildings.log 2>&1 &
buildings=$!
if [ "$roads_min" != 0 ]; then  # 0: buildings only
  "$PYTHON" -m training.train --task roads --arch effnet_lite0 --cache .gpu/cache_roads --init .gpu/init.pt \
      --minutes "$roads_min" --snapshot-every-minutes "$(python3 -c "print($roads_min * 2)")" \
      --batch 16 --lr 1e-3 --warmup-steps 200 --ema 0.998 --threads 4 --seed 22 \
      --run-dir /tmp/runs/roads > /tmp/runs/roads.log 2>&1 &
  roads=$!
fi
if [ "$roads_min" != 0 ]; then wait $roads; echo "roads exit $?"; tail -3 /tmp/runs/roads.log; fi
wait $buildings; echo "buildings exit $?"; tail -3 /tmp/runs/buildings.log
last=$(ls /tmp/runs/buildings/snapshot-*.pt | tail -1)
"$PYTHON" -m training.throughput --checkpoint "$last" --batch 16 | tee /tmp/runs/throughput.json
# at most 8 files of 16 MiB come back: snapshots two to a tar
cd /tmp/runs/buildings && ls snapshot-*.pt | paste - - | while read -r a b; do tar -cf "$out/buildings-${a%.pt}.tar" $a $b; done
cd /tmp/runs && if [ "$roads_min" != 0 ]; then tar -cf "$out/roads.tar" roads/snapshot-*.pt; fi
tar -czf "$out/logs.tgz" -C /tmp/runs $(ls -d buildings.log roads.log buildings/log.jsonl roads/log.jsonl throughput.json 2>/dev/null)
ls -la "$out"
