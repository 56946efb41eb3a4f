#!/usr/bin/env bash
# The paper grid, guarded: config/paper.yaml + config/smoke.yaml (every rule kind, preset, baseline, ablation,
# OOD and LM path on the real BERT-base / GPT-2 / DistilGPT2 architectures, 1-2 steps per stage), offline.
#   ci/paper-smoke.sh                       build the assets (kronbench smoke-assets) into results/smoke/assets
#   ci/paper-smoke.sh --assets DIR          use DIR/hub (an HF hub cache) and DIR/data (the official files) if both
#                                           exist, else build them there
#   ci/paper-smoke.sh --hub DIR --data DIR  your own HF cache and official files, as a paper run would read them
#   ci/paper-smoke.sh --gpu ...             also config/gpu-smoke.yaml: CUDA, bf16 (README "Before a paper run")
# Anything after -- goes to snakemake (e.g. -- --cores 8). Then `kronbench check-grid` checks that every
# (model, method, preset, task) reached its table, and the job count, wall time and disk used are printed.
# Results: results/smoke (rm -rf results/smoke/{runs,rows,data} to run the grid again; the assets stay).
set -euo pipefail
cd "$(dirname "$0")/.."
assets=results/smoke/assets hub="" data="" configs=(config/paper.yaml config/smoke.yaml) extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --assets) assets=$2; shift 2 ;;
        --hub) hub=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --gpu) configs+=(config/gpu-smoke.yaml); shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "ci/paper-smoke.sh: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
    esac
done
if [[ -z $hub || -z $data ]]; then
    if [[ -d $assets/hub && -d $assets/data ]]; then
        echo "paper smoke: using $assets/hub and $assets/data as given"
    else
        .venv/bin/kronbench smoke-assets --out "$assets"
    fi
    hub=${hub:-$assets/hub} data=${data:-$assets/data}
fi
hub=$(realpath "$hub") data=$(realpath "$data")
mkdir -p results/smoke
paths=results/smoke/paths.yaml  # the one machine-specific setting, as a third configfile (mappings merge)
printf '# written by ci/paper-smoke.sh\ndata: {data_dir: %s}\n' "$data" > "$paths"
export HF_HUB_CACHE=$hub HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Each shape's FLOP-cheaper Kronecker kernel, untimed: autotuning (kron/orders.py, unit-tested) spent minutes
# timing GPT-2's 768 x 50257 tied head for a 2-step stage.
export KRONBENCH_KRON_ORDER=${KRONBENCH_KRON_ORDER:-flops}

start=$(date +%s)
.venv/bin/snakemake all_tables all_figures --cores 2 --configfile "${configs[@]}" "$paths" "${extra[@]}" \
    2>&1 | tee results/smoke/snakemake.log
seconds=$(( $(date +%s) - start ))
.venv/bin/kronbench check-grid --rows results/smoke/all_results.jsonl --tables results/smoke/paper_tables
done_line=$(grep -E '^[0-9]+ of [0-9]+ steps' results/smoke/snakemake.log | tail -1 || true)
echo "paper smoke: ${done_line:-nothing to do (results/smoke is complete)}; $((seconds / 60)) min $((seconds % 60)) s;" \
     "disk: runs $(du -sh results/smoke/runs 2>/dev/null | cut -f1), results/smoke $(du -sh --exclude=assets results/smoke | cut -f1)," \
     "assets $(du -sh "$hub" | cut -f1) hub + $(du -sh "$data" | cut -f1) data"
