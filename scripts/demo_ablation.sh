#!/usr/bin/env bash
# The MoE-recipe ablation (reports/studies/2026-11-26_moe_recipe_ablation.md): short runs on the bundled backbone.
# Every variant trains 300 steps of 2-frame windows from moe3d_ros/models/demo_dpt (backbone
# frozen), starting from config/demo_moe.yaml with the winner-takes-all warm-up scaled to 100
# steps, then `moe3d-eval` scores it on the 8 held-out scenes against the DPT head trained the
# same way (variant "dpt", run first when missing). About 5 minutes per variant on 2 CPU cores.
# "end_to_end*" also train the backbone (at the step-1 learning rate); their baseline stays the
# frozen-backbone DPT head, and "dpt_end_to_end" (the DPT head with the backbone trained the
# same way, scored like a variant) says how much of their AbsRel is the backbone's training.
# Usage: bash scripts/demo_ablation.sh [variant ...]   (default: all)
# Runs go to $RUNS (default runs/ablation), reports to $REPORTS/<variant> (reports/demo_ablation).
# The recipe's own budget (1000 steps of 4-frame windows, 200 warm-up steps), all variants at once
# on a GPU (each with one data worker; the GPU table of that study):
#   STEPS=1000 FRAMES=4 WTA=200 DEVICE=cuda PARALLEL=1 bash scripts/demo_ablation.sh dpt recipe ...
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs/ablation}"
REPORTS="${REPORTS:-reports/demo_ablation}"
PYTHON="${PYTHON:-.venv/bin/python}"
STEPS="${STEPS:-300}" FRAMES="${FRAMES:-2}" WTA="${WTA:-100}" DEVICE="${DEVICE:-cpu}" PARALLEL="${PARALLEL:-0}"
SCENES="${SCENES:-8}" FIGURES="${FIGURES:-1}"  # held-out scenes scored (4-frame windows), figures per report
COMMON=(--set model.checkpoint=moe3d_ros/models/demo_dpt --set "train.steps=$STEPS" --set train.warmup_steps=20
        --set "data.frames=$FRAMES" --set "loss.winner_takes_all_steps=$WTA" --set "train.device=$DEVICE"
        --set output.log_every=10 --set output.checkpoint_every=100000)
declare -A VARIANTS=(
    [dpt]="model.depth_head=dpt train.lr=2e-4 loss.entropy_weight=0 loss.winner_takes_all_steps=0"
    [recipe]=""
    [no_spread]="model.init_spread=0"
    [no_image]="model.moe.gate_image=false"
    [no_wta]="loss.winner_takes_all_steps=0"
    [no_anneal]="train.gate_temperature_start=0"
    [k2]="model.moe.num_experts=2"
    [k8]="model.moe.num_experts=8"
    [wide_spread]="model.init_spread=0.3"
    [entropy_3e-3]="loss.entropy_weight=3e-3"
    [entropy_1e-2]="loss.entropy_weight=1e-2"
    [end_to_end]="train.backbone=full train.lr=5e-4"
    [end_to_end_entropy_1e-2]="train.backbone=full train.lr=5e-4 loss.entropy_weight=1e-2"
    [quantiles]="loss.warm_up_targets=local_quantiles"
    [quantiles_throughout]="loss.warm_up_targets=local_quantiles loss.winner_takes_all_steps=1000000"
    [quantiles_gate4]="loss.warm_up_targets=local_quantiles loss.winner_takes_all_steps=1000000 model.moe.gate_layers=4"
    [end_to_end_quantiles_gate4]="train.backbone=full train.lr=5e-4 loss.warm_up_targets=local_quantiles loss.winner_takes_all_steps=1000000 model.moe.gate_layers=4"
    [end_to_end_no_spread]="train.backbone=full train.lr=5e-4 model.init_spread=0"
    [dpt_end_to_end]="model.depth_head=dpt train.backbone=full train.lr=5e-4 loss.entropy_weight=0 loss.winner_takes_all_steps=0"
)
ORDER=(dpt recipe no_spread no_image no_wta no_anneal k2 k8 wide_spread entropy_3e-3 entropy_1e-2 end_to_end end_to_end_entropy_1e-2 end_to_end_no_spread quantiles quantiles_throughout quantiles_gate4 end_to_end_quantiles_gate4 dpt_end_to_end)

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
