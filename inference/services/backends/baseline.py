"""The CPU baseline backend: YASA's stage with a rationale built from measured waveforms.

Reads the recording's prepared signals (no images), analyses each recording once per process
(inference.services.baseline.analyse_night) and explains every queried epoch from its own
measurements (explain_epoch). Output: the SleepVLM JSON object in a ```json fenced block.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from functools import lru_cache

from inference.services.backends.base import Backend, EpochQuery, RawOutput
from inference.services.baseline import BASELINE_VERSION, NightAnalysis, analyse_night, explain_epoch, origin_note
from inference.services.evidence import recording_measurements


@lru_cache(maxsize=2)
def _analysis(signal_file: str, derivations: tuple[str, ...], epoch_starts: tuple[int, ...]) -> NightAnalysis:
    from datasets.services.storage import load_array

    measured = recording_measurements(signal_file, derivations, epoch_starts)  # the evidence check reads these too
    return analyse_night(load_array(signal_file), derivations, epoch_starts, measurements=measured)


def output_text(obj: dict) -> str:
    return "```json\n" + json.dumps(obj, ensure_ascii=False) + "\n```"


class BaselineBackend(Backend):
    name = "baseline"
    needs_images = False

    def predict(self, queries: list[EpochQuery]) -> list[RawOutput]:
        groups: OrderedDict[tuple, list[int]] = OrderedDict()
        for k, q in enumerate(queries):
            groups.setdefault((q.signal_file, tuple(q.derivations), tuple(q.epoch_starts)), []).append(k)
        outputs: list[RawOutput | None] = [None] * len(queries)
        for (signal_file, derivations, epoch_starts), members in groups.items():
            try:
                if not signal_file:
                    raise ValueError("the query has no signal file")
                analysis = _analysis(signal_file, derivations, epoch_starts)
            except Exception as exc:  # stored as failed predictions, one per query
                for k in members:
                    outputs[k] = RawOutput(queries[k].epoch_id, text="", error=f"baseline analysis failed: {exc}")
                continue
            for k in members:
                q = queries[k]
                if not 0 <= q.index < analysis.n_epochs:
                    error = f"epoch index {q.index} outside the recording's {analysis.n_epochs} epochs"
                    outputs[k] = RawOutput(q.epoch_id, text="", error=error)
                    continue
                obj = explain_epoch(analysis, q.index)
                outputs[k] = RawOutput(q.epoch_id, text=output_text(obj),
                                       probability=float(analysis.probability[q.index]),
                                       origin_note=origin_note(analysis))
        return outputs  # type: ignore[return-value]

    def fingerprint(self) -> dict:
        import yasa

        return {"yasa": yasa.__version__, "baseline": BASELINE_VERSION}
