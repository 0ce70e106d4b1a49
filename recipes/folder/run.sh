#!/usr/bin/env bash
# Real speech, real weights: any folder-of-speakers corpus + a local pretrained encoder.
#   prepare -> cache -> probe -> train Stats (training-free) -> train SUPERB (frozen, cached) -> eval -> layers
# Usage: recipes/folder/run.sh [DATA_DIR] [ENCODER_DIR] [OUT_DIR]
# With no arguments it builds the librispeech-train251 dataset (make_librispeech251.py) and uses whisper-base.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED:-/work/shared}
DATA=${1:-data/ls251}
ENC=${2:-$SHARED/models/whisper-base}
OUT=${3:-res/folder}
FRONTEND=$(python -c "from layersv.frontends import guess_frontend; print(guess_frontend('$ENC'))")
mkdir -p "$OUT"

# 1. prepare: a dataset folder (data.yaml, train.csv, valid/test_trials.csv, cohort.csv)
if [ ! -f "$DATA/data.yaml" ]; then
  if [ -n "${CORPUS:-}" ]; then  # root/<speaker>/**/*.wav|flac (`layersv prepare folder`)
    layersv prepare folder "$CORPUS" "$DATA"
  else
    python "$HERE/make_librispeech251.py" "$SHARED/data/librispeech-train251" "$DATA" \
      --split 171,40,40 --parts 2 --part_sec 3 --train_max_sec 4 --seed 0
  fi
fi

# 2. cache the frozen encoder's hidden states (all layers, fp16) of train + valid: used by probe, Stats, SUPERB
layersv cache "$DATA" --frontend "$FRONTEND" --backbone_cfg "$ENC" --splits train,valid --dtype float16

# 3. probe every hidden state: statistics + PCA whitening (train) + cosine -> EER per layer
layersv probe "$DATA" --backbone_cfg "$ENC" --frontend "$FRONTEND" --out "$OUT/probe"

# 4. training-free backend: best layers chosen on validation trials, whitening fitted on train
layersv train "$DATA" Stats --frontend "$FRONTEND" --backbone_cfg "$ENC" --layers auto \
  --mean_sub_utts 40 --out "$OUT/stats"

# 5. a trained backend on the frozen encoder (SUPERB weighted sum -> ASTP -> AAM), from the cache
#    (the cache holds clean hidden states: the recipe's waveform augmentation and speed classes are off)
layersv train "$DATA" SUPERB --frontend "$FRONTEND" --backbone_cfg "$ENC" --frz_pretrain true --cache true \
  --aug_prob 0 --speed_perturb "[]" \
  --nb_total_step 300 --nb_steps_eval 100 --batch_size 32 --mean_sub_utts 40 --out "$OUT/superb"

# 6. evaluation (test trials; both runs already wrote report.json at the end of training).
#    AS-norm + QMF calibration stages: --score_normalize --score_calibrate.
EVAL_FLAGS="--score_normalize --score_calibrate"
for r in stats superb; do layersv eval "$OUT/$r" $EVAL_FLAGS; done

# 7. which layers did the trained backend learn to use
layersv layers "$OUT/superb"
