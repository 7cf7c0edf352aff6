#!/usr/bin/env bash
# Notebooks 00-03 with params/paper.yaml + params/gpu.yaml on the GPU machine lent to this
# project (issue #21), whose image has torch but no package index: the study's other packages
# travel as wheels in .wheels-dir (default .whl, git-ignored; see /work/.library/device/README.md
# for how they were downloaded), Ray stays behind (params/gpu.yaml: cluster.engine serial).
# Two studies:
# - paper: notebooks 00-03 with params/paper.yaml + params/gpu.yaml. Output: $OUT/gpu_study.tgz
#   holding out/gpu (tables, figures, executed notebooks, manifest), unpacked here into
#   results/gpu/; benchmarks/bench_gpu.py run-rows turns its tables into rows.
# - center_student: the default data (notebook 00 with params/default.yaml), then notebook 03
#   with params/center_student.yaml: the centre students' Table III rows (issue #23), eight
#   1500-step trainings that take ~100 minutes on the 2-core machine. Output:
#   $OUT/gpu_study.tgz holding out/center_student, unpacked here into results/center_student/.
# Both run without Ray (an overlay written below: cluster.engine serial), which that machine lacks.
#
# Usage (on the GPU machine, from the repository root):
#   bash benchmarks/gpu_study.sh [paper|center_student] [WHEELS]
set -uo pipefail
study=${1:-paper}
wheels=${2:-.whl}
out=${OUT:-out}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$wheels"/*.whl || exit 1
# ultralytics reads its results.csv through polars in one place (BaseTrainer.read_results_csv);
# polars' 35 MB wheel does not fit beside the others, so a pandas stand-in answers that call.
mkdir -p /tmp/shim/polars
cat > /tmp/shim/polars/__init__.py <<'PY'
"""Stand-in for the one polars call ultralytics makes while training (read_csv(...).to_dict)."""
import io

import pandas as pd


class _Frame:
    def __init__(self, frame):
        self.frame = frame

    def to_dict(self, as_series=True):
        return {k: list(v) for k, v in self.frame.to_dict(orient="list").items()}


def read_csv(source, **_):
    return _Frame(pd.read_csv(io.BytesIO(source) if isinstance(source, bytes) else source))
PY
export PYTHONPATH=/tmp/site:/tmp/shim:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
cat > /tmp/serial.yaml <<'YAML'
cluster: {engine: serial, cpus_per_training: 16, gpus_per_training: 1}
YAML
start=$(date +%s)
run() {  # afss_utils.run ARGS..., within what is left of STUDY_TIMEOUT
    local left=$(( ${STUDY_TIMEOUT:-540} - ($(date +%s) - start) ))
    timeout "$left" python3 -m afss_utils.run --no-progress "$@" 2>&1 \
        | grep -v "IPKernelApp\|Passed unknown\|Unable to parse"
    return "${PIPESTATUS[0]}"
}
case "$study" in
    paper)
        kept=gpu
        run --params params/paper.yaml params/gpu.yaml --only 00,01,02,03 --out out/gpu
        rc=$? ;;
    center_student)
        kept=center_student
        # OVERLAY: one more params line, e.g. 'students: [center_resnet18_s8]' (one student's
        # four trainings fit one 10-minute command there, two do not: ~55 s a training).
        # Its tables/pseudo_label_quality.csv must match the 2-core study's image for image
        # (same data, same labels) or the rows are not comparable.
        printf '%s\n' "${OVERLAY:-}" > /tmp/overlay.yaml
        run --params /tmp/serial.yaml --only 00 --out out/default \
            && run --params params/center_student.yaml /tmp/serial.yaml /tmp/overlay.yaml \
                --only 03 --out out/center_student
        rc=$? ;;
    *) echo "unknown study $study: paper | center_student" >&2; exit 2 ;;
esac
echo "study exit $rc after $(( $(date +%s) - start )) s"
mkdir -p "$out"
tar czf "$out/gpu_study.tgz" -C out --exclude='*.pt' --exclude='*.pth' "$kept"
ls -la "$out"
exit "$rc"
