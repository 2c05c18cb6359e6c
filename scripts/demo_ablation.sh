#!/usr/bin/env bash
# The MoE-stage ablation (docs/demo-model.md, reports/demo_ablation_plausible/): short runs on the bundled backbone.
# Every variant trains $STEPS steps of $FRAMES-frame windows from moe3d_ros/models/demo_dpt (backbone
# frozen) with config/demo_moe.yaml plus the variant's changes, then `moe3d-eval` scores it on the
# 8 held-out scenes against the DPT head trained the same way (variant "dpt", run first when missing).
# "end_to_end*" also train the backbone; their baseline stays the frozen-backbone DPT head, and
# "dpt_end_to_end" (the DPT head with the backbone trained the same way, scored like a variant) says
# how much of their AbsRel is the backbone's training. Earlier studies (reports/studies/) ran this
# script's variants of their day on the backbone of their day.
# Usage: bash scripts/demo_ablation.sh [variant ...]   (default: all)
# Runs go to $RUNS (default runs/ablation_plausible), reports to $REPORTS/<variant> (reports/demo_ablation_plausible).
# All variants at once, each with one CPU thread (or on a GPU with DEVICE=cuda):
#   PARALLEL=1 OMP_NUM_THREADS=1 bash scripts/demo_ablation.sh dpt recipe best_targets no_image
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs/ablation_plausible}"
REPORTS="${REPORTS:-reports/demo_ablation_plausible}"
PYTHON="${PYTHON:-.venv/bin/python}"
STEPS="${STEPS:-300}" FRAMES="${FRAMES:-2}" DEVICE="${DEVICE:-cpu}" PARALLEL="${PARALLEL:-0}"
SCENES="${SCENES:-8}" FIGURES="${FIGURES:-1}"  # held-out scenes scored (4-frame windows), figures per report
COMMON=(--set model.checkpoint=moe3d_ros/models/demo_dpt --set "train.steps=$STEPS" --set train.warmup_steps=20
        --set "data.frames=$FRAMES" --set "train.device=$DEVICE"
        --set output.log_every=10 --set output.checkpoint_every=100000)
DPT="model.depth_head=dpt train.lr=2e-4 loss.entropy_weight=0 loss.nll_weight=0.1"
declare -A VARIANTS=(
    [dpt]="$DPT"
    [recipe]=""
    [best_targets]="loss.warm_up_targets=best loss.winner_takes_all_steps=100"
    [no_quantile_targets]="loss.winner_takes_all_steps=0"
    [quantile_steps]="loss.quantile_step_ratio=1.1"
    [quantile_steps_1.05]="loss.quantile_step_ratio=1.05"
    [no_image]="model.moe.gate_image=false"
    [no_anneal]="train.gate_temperature_start=0"
    [no_spread]="model.init_spread=0"
    [no_gradient_matching]="loss.gradient_matching_weight=0"
    [k2]="model.moe.num_experts=2"
    [k8]="model.moe.num_experts=8"
    [gate4]="model.moe.gate_layers=4"
    [entropy_1e-2]="loss.entropy_weight=1e-2"
    [end_to_end]="train.backbone=full train.lr=5e-4"
    [dpt_end_to_end]="$DPT train.backbone=full train.lr=5e-4"
)
ORDER=(dpt recipe best_targets no_quantile_targets quantile_steps quantile_steps_1.05 no_image no_anneal no_spread no_gradient_matching k2 k8 gate4 entropy_1e-2 end_to_end dpt_end_to_end)

train_variant() {
    local name=$1 sets=()
    for kv in ${VARIANTS[$name]}; do sets+=(--set "$kv"); done
    "$PYTHON" -m moe3d_ros.cli.train config/demo_moe.yaml "${COMMON[@]}" "${sets[@]}" --set "output.dir=$RUNS/$name"
}

score_variant() {
    local name=$1 baseline=(--baseline "$RUNS/dpt/model")
    [[ $name == dpt_* ]] && baseline=()  # a DPT variant is scored alone: its baseline is the dpt column of the other reports
    "$PYTHON" -m moe3d_ros.cli.eval --protocol synthetic --scenes "$SCENES" --frames 4 --figures "$FIGURES" --device "$DEVICE" \
        --checkpoint "$RUNS/$name/model" "${baseline[@]}" --out "$REPORTS/$name"
}

# PARALLEL=1: `$1 name` for every name at once, each logging to $RUNS/<name>.<$1>.log; fails when any fails.
each() {
    local step=$1 i failed=0 pids=()
    shift
    local names=("$@")
    if [[ $PARALLEL != 1 ]]; then
        for i in "${!names[@]}"; do "$step" "${names[$i]}"; done
        return
    fi
    mkdir -p "$RUNS"
    for i in "${!names[@]}"; do "$step" "${names[$i]}" > "$RUNS/${names[$i]}.$step.log" 2>&1 & pids+=($!); done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { failed=1; echo "demo_ablation: $step ${names[$i]} failed, see $RUNS/${names[$i]}.$step.log" >&2; }
    done
    return $failed
}

names=("${@:-${ORDER[@]}}")
for name in "${names[@]}"; do
    [[ -v "VARIANTS[$name]" ]] || { echo "unknown variant $name (choose from: ${ORDER[*]})" >&2; exit 2; }
done
to_train=()
[[ -f "$RUNS/dpt/model/model.safetensors" ]] || to_train+=(dpt)
for name in "${names[@]}"; do [[ $name == dpt ]] || to_train+=("$name"); done
each train_variant "${to_train[@]}"
to_score=()
for name in "${names[@]}"; do [[ $name == dpt ]] || to_score+=("$name"); done
each score_variant "${to_score[@]}"
