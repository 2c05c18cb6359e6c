#!/usr/bin/env bash
# Issue 31's rows, trained end to end from the bundled DPT model on the same frames and budget
# (config/study_mixture_e2e.yaml: a pre-rendered pool, single frames, 112x112 crops at native scale,
# batch 8, 2500 steps = 20 000 frames), each in resumable stages of at most $STAGE_MIN minutes:
# run the script again to go on from each row's last checkpoint; a finished row is skipped.
#   dpt            (a) the DPT head, trained as long (its stage-2 losses)
#   recipe         (b) today's MoE recipe (config/demo_moe.yaml's head and losses), end to end
#   seed           (c) K expert branches and a gate, mixture NLL + gate entropy (the seed's recipe)
#   mdn_gaussian   (d) MDA's form: one last layer emits K log-depth Gaussians, decoded by the top weight
#   mdn_laplace    (d) the same with Laplacians in log depth
#   mdn_frozen     (d) Gaussian, aggregator frozen (the control)
#   mdn_wta        (d) Gaussian, the first 400 steps a relaxed winner-takes-all: each pixel's nearest
#                  component trained, the weights taught by cross-entropy to pick it (selection from the start)
#   mdn_quantiles  (d) Gaussian, with the recipe's roles throughout: component k learns the k/3 quantile
#                  of the true depth in a 9 px square where it holds a step above 5% (elsewhere all
#                  the pixel's depth), the weights the pixel's side; temperature annealed 1 -> 0.05.
#                  (In mdn_wta the weights stayed near uniform: on surfaces the best component is noise.)
#   mdn_minmax     (d) mdn_quantiles with K = 2: the roles are the 9 px square's nearest and farthest
#                  depth, the two surfaces themselves (with K = 4 the middle quantiles won, and blend).
#   mdn_minmax_band (d) mdn_minmax with the weights' term averaged over the band where the roles differ
#                  (loss.quantile_gate_scope=band), not the whole image: the step's placement is learnt there.
# Usage: PARALLEL=1 OMP_NUM_THREADS=1 bash scripts/mixture_study.sh dpt mdn_gaussian
# WINDOWS=1 runs the last stage instead, for a finished row to be bundled (item 6): $RUNS/<row>_windows
# trains $RUNS/<row>/checkpoints/final on with stage 2's data and losses (4-frame windows of the same pool
# at 168x224, one depth scale per window, the camera head x 5), so its aggregator, trained on single
# frames above, sees windows and its camera head is trained again; $WINDOW_STEPS steps of 2 windows.
# BLUR=SIGMA (with WINDOWS=1) trains the finished window row $RUNS/<row>_windows on for $WINDOW_STEPS more steps
# with each frame blurred by a Gaussian of sigma uniform in [0, SIGMA] px (data.blur_max), on other windows of the
# pool (train.seed=4): $RUNS/<row>_windows_blur.
# START (default: config/study_mixture_e2e.yaml's model.checkpoint) is the model every row starts from.
# TRAIN_SET adds --set overrides to every stage (after the row's own), e.g. TRAIN_SET="train.device=cuda".
# Curves and scores: python scripts/mixture_curves.py (reports/mixture_study/).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs/mixture_study}"
PYTHON="${PYTHON:-.venv/bin/python}"
STAGE_MIN="${STAGE_MIN:-75}" PARALLEL="${PARALLEL:-0}" POOL="${POOL:-runs/pool}"
WINDOWS="${WINDOWS:-0}" WINDOW_STEPS="${WINDOW_STEPS:-300}" BLUR="${BLUR:-0}" SUFFIX="" FROM=""
if [[ $WINDOWS == 1 ]]; then SUFFIX=_windows; fi
if [[ $BLUR != 0 ]]; then
    [[ $WINDOWS == 1 ]] || { echo "mixture_study: BLUR=$BLUR is a window stage: set WINDOWS=1 too" >&2; exit 2; }
    FROM=_windows SUFFIX=_windows_blur
fi
WINDOW_SETS="data.frames=4 data.crop_hw=null data.target_width=224 train.batch_size=2 train.steps=$WINDOW_STEPS
    train.lr=1.0e-4 train.warmup_steps=20 train.gate_temperature_start=0 loss.scale_invariant_scope=window
    loss.camera_weight=5.0"
declare -A ROWS=(
    [dpt]="model.depth_head=dpt loss.likelihood=laplace loss.nll_weight=0.1"
    [recipe]="model.moe.scope=output model.moe.temperature=0.05 model.moe.gate_layers=2 model.moe.gate_image=true model.init_spread=0.1 train.gate_temperature_start=1.0 loss.likelihood=laplace loss.entropy_weight=1e-3 loss.winner_takes_all_steps=1000000 loss.warm_up_targets=local_quantiles"
    [seed]="model.moe.scope=output model.init_spread=0.1 loss.likelihood=laplace loss.entropy_weight=1e-2"
    [mdn_gaussian]=""
    [mdn_laplace]="loss.likelihood=log_laplace"
    [mdn_frozen]="train.backbone=frozen"
    [mdn_wta]="loss.winner_takes_all_steps=400 loss.warm_up_targets=best"
    [mdn_quantiles]="loss.winner_takes_all_steps=1000000 loss.warm_up_targets=local_quantiles loss.quantile_step_ratio=1.05 model.moe.temperature=0.05 train.gate_temperature_start=1.0"
    [mdn_minmax]="model.moe.num_experts=2 loss.winner_takes_all_steps=1000000 loss.warm_up_targets=local_quantiles loss.quantile_step_ratio=1.05 model.moe.temperature=0.05 train.gate_temperature_start=1.0"
    [mdn_minmax_band]="model.moe.num_experts=2 loss.winner_takes_all_steps=1000000 loss.warm_up_targets=local_quantiles loss.quantile_step_ratio=1.05 loss.quantile_gate_scope=band model.moe.temperature=0.05 train.gate_temperature_start=1.0"
)
ORDER=(dpt mdn_gaussian mdn_wta mdn_quantiles mdn_minmax mdn_minmax_band recipe seed mdn_laplace mdn_frozen)

# train_row ROW: $RUNS/ROW, or with WINDOWS=1 $RUNS/ROW_windows from ROW's final checkpoint.
train_row() {
    local row=$1 name=$1 sets=() status=0
    for kv in ${ROWS[$row]}; do sets+=(--set "$kv"); done
    if [[ $WINDOWS == 1 ]]; then
        name=$row$SUFFIX
        local from=$row$FROM
        [[ -f "$RUNS/$from/checkpoints/final/trainer_state.pt" ]] || { echo "mixture_study: $from has not finished" >&2; return 1; }
        for kv in $WINDOW_SETS; do sets+=(--set "$kv"); done
        sets+=(--set "model.checkpoint=$RUNS/$from/checkpoints/final" --set "data.blur_max=$BLUR")
        [[ $BLUR == 0 ]] || sets+=(--set "train.seed=4")  # other windows than the window stage drew
    elif [[ -n ${START:-} ]]; then
        sets+=(--set "model.checkpoint=$START")
    fi
    if [[ -f "$RUNS/$name/checkpoints/final/trainer_state.pt" ]]; then echo "mixture_study: $name finished"; return; fi
    for kv in ${TRAIN_SET:-}; do sets+=(--set "$kv"); done
    timeout "${STAGE_MIN}m" "$PYTHON" -m moe3d_ros.cli.train config/study_mixture_e2e.yaml --resume "${sets[@]}" \
        --set "data.paths=[$POOL]" --set "output.dir=$RUNS/$name" || status=$?
    if [[ $status == 124 ]]; then echo "mixture_study: $name stopped after $STAGE_MIN min; run again to resume"; return; fi
    return $status
}

names=("${@:-${ORDER[@]}}")
for name in "${names[@]}"; do
    [[ -v "ROWS[$name]" ]] || { echo "unknown row $name (choose from: ${ORDER[*]})" >&2; exit 2; }
done
[[ -d $POOL ]] || "$PYTHON" scripts/render_pool.py --out "$POOL" --scenes 1150 --frames 6
mkdir -p "$RUNS"
pids=()
for name in "${names[@]}"; do
    if [[ $PARALLEL == 1 ]]; then train_row "$name" >> "$RUNS/$name$SUFFIX.log" 2>&1 & pids+=($!); else train_row "$name"; fi
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit $failed
