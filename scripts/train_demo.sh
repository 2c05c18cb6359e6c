#!/usr/bin/env bash
# Trains the bundled demo pair in resumable stages (docs/demo-model.md; each run at most 75 min on
# 2 CPU cores; stages 1-3 2.5 h, stage 4 about 4 h in four runs):
#   pretrain  stage 1: the demo model (DPT head) from scratch on single frames at 84x112, batch 8
#   windows   stage 2: the whole model on 4-frame windows at 168x224, with the camera head
#   heads     stage 3: aggregator frozen; (a) the DPT baseline head and (b) the MoE head, trained side
#             by side (one CPU thread each) for the same steps on the same data
#   mixture   stage 4 (issue 31, scripts/mixture_study.sh rows dpt and recipe): from 3a, the whole model
#             with (a) the DPT head and (b) 3b's MoE head and losses, side by side on the same 20 000
#             single frames of a pre-rendered pool, then each on 4-frame windows with the camera head,
#             then 1 200 more frames of windows blurred by a Gaussian of 0-2 px (robot cameras blur)
#   bundle    copies 4b to moe3d_ros/models/demo and 4a to moe3d_ros/models/demo_dpt
#   evaluate  scores the pair on the 8 issue scenes and 16 more held-out seeds (plausible world)
#             and on 8 scenes of the floating world (robustness): reports/synthetic*
# Every stage picks up from the one before it and resumes from its own last checkpoint when run
# again; a finished stage is skipped. Each stage's time goes to $RUNS/times.txt.
# Usage: bash scripts/train_demo.sh [stage ...]   (default: all, in order; RUNS=runs)
# TRAIN_SET adds --set overrides to every training stage, e.g. TRAIN_SET="train.device=cuda data.workers=6"
# (a batch depends only on the seed and the step, so any device sees the same data).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs}"
PYTHON="${PYTHON:-.venv/bin/python}"
overrides=()
for item in ${TRAIN_SET:-}; do overrides+=(--set "$item"); done

# train NAME CONFIG [--set ...]: runs/NAME from CONFIG, resumed from its latest checkpoint; skipped when done.
train() {
    local name=$1 config=$2 start=$SECONDS
    shift 2
    if [[ -f "$RUNS/$name/checkpoints/final/trainer_state.pt" ]]; then
        echo "train_demo: $name already finished ($RUNS/$name/checkpoints/final)"
        return
    fi
    "$PYTHON" -m moe3d_ros.cli.train "$config" --resume --set "output.dir=$RUNS/$name" "$@" "${overrides[@]}"
    echo "$name $(( SECONDS - start )) s" >> "$RUNS/times.txt"
    echo "train_demo: $name took $(( (SECONDS - start) / 60 )) min"
}

pretrain() { train demo_pretrain config/demo_pretrain.yaml; }
windows() { train demo_dpt config/demo_dpt.yaml --set "model.checkpoint=$RUNS/demo_pretrain/checkpoints/final"; }
heads() {
    local backbone=(--set "model.checkpoint=$RUNS/demo_dpt/checkpoints/final")
    OMP_NUM_THREADS=1 train demo_dpt_head config/demo_dpt_head.yaml "${backbone[@]}" > "$RUNS/demo_dpt_head.log" 2>&1 &
    local baseline=$!
    OMP_NUM_THREADS=1 train demo_moe config/demo_moe.yaml "${backbone[@]}" > "$RUNS/demo_moe.log" 2>&1 &
    local moe=$! failed=0
    wait $baseline || { failed=1; echo "train_demo: the DPT head failed, see $RUNS/demo_dpt_head.log" >&2; }
    wait $moe || { failed=1; echo "train_demo: the MoE head failed, see $RUNS/demo_moe.log" >&2; }
    return $failed
}
mixture() {
    local study=(env RUNS="$RUNS/mixture_study" START="$RUNS/demo_dpt_head/model" POOL="${POOL:-$RUNS/pool}"
                 PYTHON="$PYTHON" PARALLEL=1 OMP_NUM_THREADS=1) start=$SECONDS
    "${study[@]}" bash scripts/mixture_study.sh dpt recipe  # each row stops after 75 min: run the stage again
    "${study[@]}" WINDOWS=1 bash scripts/mixture_study.sh dpt recipe
    "${study[@]}" WINDOWS=1 BLUR=2 WINDOW_STEPS=150 bash scripts/mixture_study.sh dpt recipe
    echo "mixture $(( SECONDS - start )) s" >> "$RUNS/times.txt"
}
bundle() {
    for pair in "mixture_study/recipe_windows_blur:demo" "mixture_study/dpt_windows_blur:demo_dpt"; do
        local run="${pair%%:*}" bundled="moe3d_ros/models/${pair##*:}"
        mkdir -p "$bundled"
        cp "$RUNS/$run/model/model.safetensors" "$RUNS/$run/model/config.json" "$bundled/"
    done
    echo "train_demo: demo models written to moe3d_ros/models/demo (MoE) and moe3d_ros/models/demo_dpt (DPT baseline)"
}
evaluate() {
    local eval=("$PYTHON" -m moe3d_ros.cli.eval --protocol synthetic --frames 4)
    "${eval[@]}" --scenes 8 --figures 2 --out reports/synthetic
    "${eval[@]}" --scenes 16 --seed0 900100 --figures 0 --out reports/synthetic_more
    "${eval[@]}" --scenes 8 --world floating --figures 1 --out reports/synthetic_floating
}

STAGES=(pretrain windows heads mixture bundle evaluate)
for stage in "${@:-${STAGES[@]}}"; do
    [[ " ${STAGES[*]} " == *" $stage "* ]] || { echo "unknown stage $stage (choose from: ${STAGES[*]})" >&2; exit 2; }
done
mkdir -p "$RUNS"
for stage in "${@:-${STAGES[@]}}"; do "$stage"; done
echo "train_demo: done"
