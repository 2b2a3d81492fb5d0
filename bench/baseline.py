"""Benchmark the CPU baseline backend's analysis on one synthetic 8-hour night.

Builds a synthetic night (fixed seed), prepares its six derivations exactly as the importer does
(datasets.services.signals.prepare: band-pass, notch, 100 Hz), then runs the code the `baseline`
backend runs: inference.services.baseline.analyse_night once, explain_epoch for every epoch.

`seconds_per_night` is the first night in a fresh process, so it includes the one-off import of
YASA and antropy (antropy compiles its numba functions at import, ~7 s); `repeat_seconds` is a
second night in the same process (what a long-lived worker pays per night). Last line of output:
one JSON object.

    .venv/bin/python bench/baseline.py [--hours 8] [--seed 20240611] [--no-repeat]
"""

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.metrics import cohen_kappa_score  # noqa: E402

from datasets.constants import RULE_IDS  # noqa: E402
from datasets.services.synthetic import prepared_signals, synthesize_night  # noqa: E402
from inference.services.baseline import analyse_night, explain_epoch  # noqa: E402

SEED = 20240611


def run(signals, derivations, starts):
    t = time.perf_counter()
    analysis = analyse_night(signals, derivations, starts)
    outputs = [explain_epoch(analysis, i) for i in range(analysis.n_epochs)]
    return analysis, outputs, time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--no-repeat", action="store_true")
    args = parser.parse_args()

    t = time.perf_counter()
    night = synthesize_night(hours=args.hours, seed=args.seed)
    synth_s = time.perf_counter() - t
    t = time.perf_counter()
    signals, derivations, starts = prepared_signals(night)
    prepare_s = time.perf_counter() - t
    print(f"synthetic night: {night.n_epochs} epochs, {synth_s:.1f} s to synthesize, {prepare_s:.1f} s to prepare")

    analysis, outputs, first_s = run(signals, derivations, starts)
    print(f"first night (imports included): {first_s:.1f} s; steps: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in analysis.seconds.items()))
    result = {"seconds_per_night": round(first_s, 2), "epochs": len(outputs)}
    if not args.no_repeat:
        again, outputs2, repeat_s = run(signals, derivations, starts)
        assert outputs2 == outputs, "the baseline is not deterministic"
        print(f"repeat night (warm process): {repeat_s:.1f} s; steps: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in again.seconds.items()))
        result["repeat_seconds"] = round(repeat_s, 2)
    stages = [o["sleep_stage"] for o in outputs]
    rules = Counter(r for o in outputs for r in o["applicable_rules"])
    result.update({
        "kappa_vs_generator": round(cohen_kappa_score(night.stages, stages), 3),
        "accuracy_vs_generator": round(float(np.mean(np.array(night.stages) == np.array(stages))), 3),
        "n3_rule_vs_planned_sw_fraction": round(
            float(np.mean((analysis.sw_share >= 0.2) == (night.sw_fraction >= 0.2))), 3),
        "epochs_without_rules": sum(1 for o in outputs if not o["applicable_rules"]),
        "rule_counts": {r: rules[r] for r in RULE_IDS if rules[r]},
        "mean_rationale_chars": round(float(np.mean([len(o["reasoning_text"]) for o in outputs]))),
    })
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
