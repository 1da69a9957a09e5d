#!/bin/sh
# A training command that is not Python: any program that prints report lines can be a trial.
# Here awk stands in for your binary; the sweep passes the configuration as arguments
# (sweep_shell.yaml: train.sh {lr} {steps} {eval_every} {seed}); it is also, whole, JSON in
# $ADEMIX_SWEEP_TRIAL. Print one line per evaluation, and flush it:
#   {"ademix_sweep": {"step": 100, "val_loss": 2.31}}
set -eu
lr=$1 steps=$2 every=$3 seed=$4
echo "train.sh: lr=$lr steps=$steps seed=$seed"
awk -v lr="$lr" -v steps="$steps" -v every="$every" -v seed="$seed" 'BEGIN {
    srand(seed)
    floor = 1.5 + 0.2 * (log(lr / 0.01)) ^ 2       # the best learning rate is 0.01
    loss = 4.0
    for (step = 1; step <= steps; step++) {
        loss = floor + (loss - floor) * (1 - 0.05) + 0.002 * (rand() - 0.5)
        if (step % every == 0) {
            printf "{\"ademix_sweep\": {\"step\": %d, \"val_loss\": %.6f}}\n", step, loss
            fflush()
        }
    }
}'
