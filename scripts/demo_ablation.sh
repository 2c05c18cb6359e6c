#!/usr/bin/env bash
# The MoE-recipe ablation in the README ("The demo model"): short runs on the bundled backbone.
# Every variant trains 300 steps of 2-frame windows from moe3d_ros/models/demo_dpt (backbone
# frozen), starting from config/demo_moe.yaml with the winner-takes-all warm-up scaled to 100
# steps, then `moe3d-eval` scores it on the 8 held-out scenes against the DPT head trained the
# same way (variant "dpt", run first when missing). About 5 minutes per variant on 2 CPU cores.
# "end_to_end*" also train the backbone (at the step-1 learning rate); their baseline stays the
# frozen-backbone DPT head, and "dpt_end_to_end" (the DPT head with the backbone trained the
# same way, scored like a variant) says how much of their AbsRel is the backbone's training.
# Usage: bash scripts/demo_ablation.sh [variant ...]   (default: all)
# Runs go to $RUNS (default runs/ablation), reports to reports/demo_ablation/<variant>.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs/ablation}"
PYTHON="${PYTHON:-.venv/bin/python}"
COMMON=(--set model.checkpoint=moe3d_ros/models/demo_dpt --set train.steps=300 --set train.warmup_steps=20
        --set data.frames=2 --set loss.winner_takes_all_steps=100 --set output.log_every=10
        --set output.checkpoint_every=10000)
declare -A VARIANTS=(
    [dpt]="model.depth_head=dpt train.lr=2e-4 loss.entropy_weight=0 loss.winner_takes_all_steps=0"
    [recipe]=""
    [no_spread]="model.init_spread=0"
    [no_image]="model.moe.gate_image=false"
    [no_wta]="loss.winner_takes_all_steps=0"
    [no_anneal]="train.gate_temperature_start=0"
    [k2]="model.moe.num_experts=2"
    [wide_spread]="model.init_spread=0.3"
    [entropy_1e-2]="loss.entropy_weight=1e-2"
    [end_to_end]="train.backbone=full train.lr=5e-4"
    [end_to_end_entropy_1e-2]="train.backbone=full train.lr=5e-4 loss.entropy_weight=1e-2"
    [dpt_end_to_end]="model.depth_head=dpt train.backbone=full train.lr=5e-4 loss.entropy_weight=0 loss.winner_takes_all_steps=0"
)
ORDER=(dpt recipe no_spread no_image no_wta no_anneal k2 wide_spread entropy_1e-2 end_to_end end_to_end_entropy_1e-2 dpt_end_to_end)

train_variant() {
    local name=$1 sets=()
    for kv in ${VARIANTS[$name]}; do sets+=(--set "$kv"); done
    "$PYTHON" -m moe3d_ros.cli.train config/demo_moe.yaml "${COMMON[@]}" "${sets[@]}" --set "output.dir=$RUNS/$name"
}

for name in "${@:-${ORDER[@]}}"; do
    [[ -v "VARIANTS[$name]" ]] || { echo "unknown variant $name (choose from: ${ORDER[*]})" >&2; exit 2; }
done
[[ -f "$RUNS/dpt/model/model.safetensors" ]] || train_variant dpt
for name in "${@:-${ORDER[@]}}"; do
    [[ $name == dpt ]] && continue
    train_variant "$name"
    baseline=(--baseline "$RUNS/dpt/model")
    [[ $name == dpt_* ]] && baseline=()  # a DPT variant is scored alone: its baseline is the dpt column of the other reports
    "$PYTHON" -m moe3d_ros.cli.eval --protocol synthetic --scenes 8 --frames 4 --figures 1 \
        --checkpoint "$RUNS/$name/model" "${baseline[@]}" --out "reports/demo_ablation/$name"
done
