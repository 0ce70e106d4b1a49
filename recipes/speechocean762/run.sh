#!/usr/bin/env bash
# Real speech, many recordings per speaker: train layer-wise backends on a frozen encoder and compare
# them with the training-free statistics, on speakers never seen in training.
#
#   recipes/speechocean762/run.sh [DATA_DIR] [ENCODER_DIR] [OUT_DIR]
#
# DATA_DIR: a corpus folder  <speaker>/<files>  (e.g. ../shared/data/speechocean762-train/opus; any
#           format soundfile reads), prepared into OUT_DIR/data with `layersv prepare folder`
#           (80/10/10 speakers, gender-balanced trials from a metadata.csv beside it), or an already
#           prepared dataset folder (data.yaml present), used as it is with its own valid/test trials.
# ENCODER_DIR: a local pretrained encoder (default ../shared/models/whisper-base).
# OUT_DIR: one folder per system, each with report.json for the test trials (OUT_DIR/fusion: Stats +
#          SUPERB-pooled fused); results.md, curves.png.
# Environment: SYSTEMS (default "stats superb_pooled superb lap mhfa unipool ltdnn"), STEPS (training
# steps of every trained backend; default: each config's own nb_total_step), AUG_COPIES (augmented copies
# per training utterance in the cache: simulated reverberation, coloured noise or babble of other
# training speakers, no external corpus; default 0: on this clean read speech one copy made the trained
# backends worse in speaker cross-validation, see README), AUG_PROB (share of training crops read from
# a copy when AUG_COPIES > 0, default 0.6 as LAP's recipe).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED:-$HERE/../../../shared}
SRC=${1:-$SHARED/data/speechocean762-train/opus}
ENC=${2:-$SHARED/models/whisper-base}
OUT=${3:-res/speechocean762}
SYSTEMS=${SYSTEMS:-stats superb_pooled superb lap mhfa unipool ltdnn}
STEPS=${STEPS:-}
AUG_COPIES=${AUG_COPIES:-0}
AUG_PROB=${AUG_PROB:-0.6}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$OUT/timing.log"; }

# 1. the dataset folder
if [ -f "$SRC/data.yaml" ]; then DATA=$SRC; else DATA=$OUT/data; layersv prepare folder "$SRC" "$DATA"; fi
FRONTEND=$(python -c "from layersv.frontends import guess_frontend; print(guess_frontend('$ENC'))")
COMMON=(--frontend "$FRONTEND" --backbone_cfg "$ENC")
stamp "prepared $DATA"

# 2. the frozen encoder's hidden states, once, for every split (fp16 memmap shards)
CACHE_AUG=(); TRAIN_AUG=()  # the trained backends draw a copy for AUG_PROB of their crops
if [ "$AUG_COPIES" -gt 0 ]; then
  CACHE_AUG=(--augment_copies "$AUG_COPIES"); TRAIN_AUG=(--augment_copies "$AUG_COPIES" --aug_prob "$AUG_PROB")
fi
layersv cache "$DATA" "${COMMON[@]}" --splits train,valid,test --dtype float16 --no-progress "${CACHE_AUG[@]}"
stamp "cache"

# 3. per-layer probe (training-free, validation and test EER per hidden state)
layersv probe "$DATA" "${COMMON[@]}" --out "$OUT/probe" --no-progress
stamp "probe"

EVAL=(--score_normalize --score_calibrate --score_plda)  # PLDA needs speakers with 2+ recordings
for sys in $SYSTEMS; do
  case $sys in
    stats)  # 4. training-free: best layers chosen on validation, PCA + LDA fitted on train; PLDA stage
      layersv train "$DATA" Stats "${COMMON[@]}" --layers auto --out "$OUT/stats" --no-progress
      layersv eval "$OUT/stats" "${EVAL[@]}" --no-progress ;;
    superb_pooled|superb|lap|mhfa|unipool|ltdnn)  # 5. trained backends on the frozen encoder, from the cache
      model=$(python - "$HERE/configs/$sys.yaml" <<'PY'
import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["model"]["model"])
PY
)
      layersv train "$DATA" "$model" --config "$HERE/configs/$sys.yaml" "${COMMON[@]}" \
        ${STEPS:+--nb_total_step "$STEPS"} "${TRAIN_AUG[@]}" --out "$OUT/$sys" --no-progress
      layersv eval "$OUT/$sys" "${EVAL[@]}" --no-progress
      layersv layers "$OUT/$sys" > /dev/null ;;
    *) echo "unknown system $sys" >&2; exit 2 ;;
  esac
  stamp "$sys"
done

# 6. the training-free statistics fused with the trained SUPERB-pooled backend: logistic-regression
#    weights fitted on the validation trials' PLDA scores, applied to the test trials
if [[ " $SYSTEMS " == *" stats "* && " $SYSTEMS " == *" superb_pooled "* ]]; then
  layersv fuse "$OUT/stats:plda" "$OUT/superb_pooled:plda" --out "$OUT/fusion"
  stamp "fusion"
fi

# 7. one table, the training curves, the layer usage
python "$HERE/summarize.py" "$OUT"
stamp "done"
