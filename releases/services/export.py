"""The contents of a release, written to a local folder one recording at a time (memory does not grow
with the number of recordings).

MASS-EX files (spec/mass-ex.md), unchanged in layout: `annotations/coarse/<subject>.csv` (custom_id,
Subject, N, Stage, applicable_rules) for every exported epoch and `annotations/fine/<subject>.csv`
(custom_id, Subject, N, Stage, reasoning_text, applicable_rules) for those with an expert rationale.
N is the epoch's rank among the recording's exported epochs (those with a stage from the release's stage
source) in time order: with the reference as source, exactly the MASS-EX N of the import.
Stage comes from the stage source; applicable_rules from expert rule ids (a rating's correction first,
then the reference rules, then a scoring campaign's rationale-mode label); reasoning_text from expert
rationales (the reference rationale, then a rationale-mode label).

Everything the platform adds goes in further files: long tables in CSV and Parquet under `tables/` (and
Parquet copies of fine and coarse), `agreement.json` and `agreement.md`, `rules.md`, the dataset card
`README.md`, `CHANGELOG.md`, `provenance.json` (services/provenance.py) and `MANIFEST.sha256`; optionally
`images/<subject>/<N>_<Stage>.png`.
Raters are pseudonymised as rater-01, rater-02, ... in user-id order, stable within a release.
Nothing written depends on the time of the build: the same database gives the same bytes.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import orjson
from django.core.files.storage import default_storage
from django.db.models import TextField
from django.db.models.functions import Cast

from annotation.models import Adjudication, CampaignItem, Label
from annotation.services.consensus import ItemConsensus, summarise
from annotation.services.dashboard import campaign_statistics as scoring_statistics
from core.services.plots import agreement_text
from core.services.rows import fetch
from datasets.constants import STAGES
from datasets.models import Epoch, EpochImage, Recording
from inference.models import AasmRule, Prediction
from ratings.models import Rating
from ratings.services.statistics import campaign_statistics as rating_statistics
from ratings.services.statistics import render_report

SUBJECT = re.compile(r"\d{2}-\d{2}-\d{4}")
COARSE = ["custom_id", "Subject", "N", "Stage", "applicable_rules"]
FINE = ["custom_id", "Subject", "N", "Stage", "reasoning_text", "applicable_rules"]
S, I, B, F = "string", "int64", "bool_", "float64"  # pyarrow's type names (pyarrow is imported where used)
TABLES = {
    "coarse": [("custom_id", S), ("Subject", S), ("N", I), ("Stage", S), ("applicable_rules", S)],
    "fine": [("custom_id", S), ("Subject", S), ("N", I), ("Stage", S), ("reasoning_text", S), ("applicable_rules", S)],
    "stage_labels": [("subject", S), ("N", I), ("epoch_index", I), ("campaign", S), ("rater", S), ("pass", S),
                     ("stage", S), ("uncertain", B), ("revision", I)],
    "consensus": [("subject", S), ("N", I), ("epoch_index", I), ("campaign", S), ("stage", S), ("majority", S),
                  ("agreement", F), ("labels", I), ("tie", B), ("adjudicated", S)],
    "predictions": [("subject", S), ("N", I), ("epoch_index", I), ("model_version", S), ("version_hash", S),
                    ("status", S), ("stage", S), ("rule_ids", S), ("rationale", S)],
    "ratings": [("subject", S), ("N", I), ("epoch_index", I), ("campaign", S), ("item", I), ("origin", S),
                ("source", S), ("rater", S), ("dimension", S), ("score", I), ("rubric_version", I), ("fast", B)],
    "notes": [("subject", S), ("N", I), ("epoch_index", I), ("campaign", S), ("item", I), ("rater", S),
              ("note", S), ("corrected_stage", S), ("corrected_rule_ids", S)],
}
EXTRA_TABLES = ("stage_labels", "consensus", "predictions", "ratings", "notes")


def subject_of(recording) -> str:
    """The subject id of a recording: the MASS id in its name (e.g. 01-03-0006), else its name."""
    found = SUBJECT.search(recording.name)
    return found.group(0) if found else recording.name


def rules_text(rule_ids) -> str:
    return ", ".join(rule_ids or ())


class Tables:
    """The long tables, each written as CSV and Parquet row group by row group. pyarrow is imported here, not
    with the module: a build computes its agreement figures, its largest document, before it writes a table."""

    def __init__(self, root: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.arrow = pa
        self.root, self.csv, self.parquet, self.files = root, {}, {}, []
        for name, fields in TABLES.items():
            folder = "annotations/parquet" if name in ("fine", "coarse") else "tables"
            (root / folder).mkdir(parents=True, exist_ok=True)
            schema = pa.schema([(field, getattr(pa, kind)()) for field, kind in fields])
            self.parquet[name] = pq.ParquetWriter(root / folder / f"{name}.parquet", schema, compression="zstd")
            if name in EXTRA_TABLES:
                handle = open(root / folder / f"{name}.csv", "w", encoding="utf-8", newline="")
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow([f for f, _ in fields])
                self.csv[name] = (handle, writer)

    def add(self, name: str, rows: list[tuple]) -> None:
        """Rows as tuples in the order of the table's fields (a row group of the Parquet file)."""
        if not rows:
            return
        schema = self.parquet[name].schema
        pa = self.arrow
        columns = [pa.array(column, type=field.type) for column, field in zip(zip(*rows), schema)]
        self.parquet[name].write_table(pa.Table.from_arrays(columns, schema=schema))
        if name in self.csv:
            self.csv[name][1].writerows(rows)  # csv writes None as ""

    def close(self) -> None:
        for writer in self.parquet.values():
            writer.close()
        for handle, _ in self.csv.values():
            handle.close()


class ReleaseContent:
    """What one release holds, read from the database through the release's choices."""

    def __init__(self, release, choices=None):
        """`choices` (build.Choices) give the release's rows where the release is not saved (a preview)."""
        self.release = release
        if choices is None:
            self.cohorts = list(release.cohorts.order_by("pk"))
            self.scoring = list(release.scoring_campaigns.order_by("pk"))
            self.rating = list(release.rating_campaigns.order_by("pk"))
            self.versions = list(release.model_versions.order_by("pk"))
        else:
            by_pk = lambda rows: sorted(set(rows), key=lambda row: row.pk)  # noqa: E731
            self.cohorts, self.scoring = by_pk(choices.cohorts), by_pk(choices.scoring_campaigns)
            self.rating, self.versions = by_pk(choices.rating_campaigns), by_pk(choices.model_versions)
        self.recordings = sorted(Recording.objects.filter(cohort__in=self.cohorts), key=lambda r: (subject_of(r), r.pk))
        subjects = Counter(subject_of(r) for r in self.recordings)
        doubled = sorted(s for s, n in subjects.items() if n > 1)
        if doubled:
            from core.exceptions import InputError

            raise InputError(f"several recordings of the release's cohorts share subject id(s) {', '.join(doubled)}: "
                             "one CSV per subject cannot hold them")
        users = set(Label.objects.filter(item__campaign__in=self.scoring).values_list("rater_id", flat=True))
        users |= set(Rating.objects.filter(item__campaign__in=self.rating).values_list("rater_id", flat=True))
        self.rater = {pk: f"rater-{n:02d}" for n, pk in enumerate(sorted(users), start=1)}

    # --- per recording ---------------------------------------------------------------------------

    def consensus(self, recording, labels) -> dict[int, dict[int, ItemConsensus]]:
        """campaign id -> item id -> consensus of the recording's items, from its current labels as
        write_recording reads them (one reading of the labels serves the tables and the consensus)."""
        out = {campaign.pk: {} for campaign in self.scoring}
        # by recording alone, the campaigns picked here: SQLite would walk a campaign's whole index otherwise
        items = CampaignItem.objects.filter(recording=recording).values_list("campaign_id", "pk", "epoch_id")
        adjudications = (Adjudication.objects.filter(item__recording=recording).order_by("item_id", "created_at", "pk")
                         .values_list("item__campaign_id", "item_id", "stage"))
        campaign_of, pairs = {}, []
        for campaign_id, pk, epoch_id in items:
            if campaign_id in out:
                campaign_of[pk] = campaign_id
                pairs.append((pk, epoch_id))
        summaries = summarise(pairs, ((label[0], label[3], label[5]) for label in labels if not label[4]),
                              ((item, stage) for campaign_id, item, stage in adjudications if campaign_id in out))
        for pk, summary in summaries.items():
            out[campaign_of[pk]][pk] = summary
        return out

    def stages(self, recording, epochs, consensus) -> dict[int, str]:
        """epoch id -> its stage from the release's stage source (epochs without one are not exported);
        `epochs`: epoch id -> (index, stage, ...); `consensus` as self.consensus gives it."""
        source = self.release.stage_source
        if source == self.release.CONSENSUS:
            out = {}
            for campaign in self.scoring:
                for summary in consensus[campaign.pk].values():
                    if summary.stage and summary.epoch_id in epochs and summary.epoch_id not in out:
                        out[summary.epoch_id] = summary.stage
            return out
        out = {pk: e[2] for pk, e in epochs.items() if e[2] in STAGES}
        if source == self.release.ADJUDICATED:
            adjudications = (Adjudication.objects.filter(item__campaign__in=self.scoring, item__epoch_id__in=epochs)
                             .order_by("item__epoch_id", "item__campaign_id", "-created_at", "-pk"))
            seen = set()
            for epoch_id, stage in adjudications.values_list("item__epoch_id", "stage"):
                if epoch_id not in seen:
                    out[epoch_id] = stage
                    seen.add(epoch_id)
        return out

    def write_recording(self, recording, root: Path, tables: Tables) -> tuple[str, dict[int, tuple]]:
        """Write one recording's rows; returns its subject and N -> (Stage, applicable_rules, reasoning_text)."""
        subject = subject_of(recording)
        rows = fetch(Epoch.objects.filter(recording=recording).order_by("index")
                     .values_list("pk", "index", "stage", _json_text("reference_rules"), "reference_rationale"))
        epochs = {row[0]: row for row in rows}
        reference_rules = dict(zip(epochs, _json_values(row[3] for row in rows)))
        scoring = {c.pk: c.name for c in self.scoring}
        # as the driver gives them (fetch): a boolean may come as 0 or 1, made bool where it is written
        labels = [label for label in fetch(Label.objects.filter(item__recording=recording, replaced_by__isnull=True)
                  .order_by("item__epoch__index", "item__campaign_id", "rater_id", "rescore")
                  .values_list("item_id", "item__epoch_id", "item__campaign_id", "rater_id", "rescore", "stage",
                               "uncertain", "revision", _json_text("rule_ids"), "rationale")) if label[2] in scoring]
        consensus = self.consensus(recording, labels)
        stages = self.stages(recording, epochs, consensus)
        number = {pk: n for n, pk in enumerate(pk for pk in epochs if pk in stages)}
        rating = {c.pk for c in self.rating}
        ratings = [r for r in Rating.objects.filter(item__recording=recording, replaced_by__isnull=True, rescore=False)
                   .order_by("item__epoch__index", "item__campaign_id", "item__position", "rater_id")
                   .values("item__epoch_id", "item__campaign_id", "item__campaign__name", "item__position",
                           "item__origin", "item__model_version__name", "item__source", "rater_id", "scores",
                           "rubric__version", "fast", "note", "corrected_stage", "corrected_rule_ids", "created_at")
                   if r["item__campaign_id"] in rating]
        expert_rules, expert_rationale = {}, {}
        for label in labels:  # rationale-mode labels, first rater first
            if not label[4] and label[8] not in _EMPTY_JSON:
                rules = json.loads(label[8])
                if rules:
                    expert_rules.setdefault(label[1], rules)
            if not label[4] and label[9]:
                expert_rationale.setdefault(label[1], label[9])
        corrections = {}
        for rating in sorted(ratings, key=lambda r: (r["created_at"], r["rater_id"])):  # the latest correction wins
            if rating["corrected_rule_ids"]:
                corrections[rating["item__epoch_id"]] = rating["corrected_rule_ids"]

        coarse, fine, exported = [], [], {}
        for pk, (_, _, _, _, reference_rationale) in epochs.items():
            if pk not in stages:
                continue
            n, stage = number[pk], stages[pk]
            rules = corrections.get(pk) or reference_rules[pk] or expert_rules.get(pk) or []
            rationale = reference_rationale or expert_rationale.get(pk, "")
            text = rules_text(rules)
            row = (f"{subject}#{n}_{stage}", subject, n, stage, text)
            coarse.append(row)
            if rationale:
                fine.append((*row[:4], rationale, text))
            exported[n] = (stage, text, rationale)
        _write_csv(root / "annotations" / "coarse" / f"{subject}.csv", COARSE, coarse)
        if fine:
            _write_csv(root / "annotations" / "fine" / f"{subject}.csv", FINE, fine)
        tables.add("coarse", coarse)
        tables.add("fine", fine)

        def where(epoch_ids) -> tuple:
            return tuple((subject, number.get(pk), epochs[pk][1]) for pk in epoch_ids)
        tables.add("stage_labels", [
            (*place, scoring[r[2]], self.rater[r[3]], "rescore" if r[4] else "first", r[5], bool(r[6]), r[7])
            for place, r in zip(where(r[1] for r in labels), labels)])
        tables.add("consensus", self._consensus_rows(consensus, epochs, where))
        predictions = fetch(Prediction.objects.filter(epoch__recording=recording, model_version__in=self.versions)
                            .order_by("epoch__index", "model_version_id")
                            .values_list("epoch_id", "model_version__name", "version_hash", "status", "stage",
                                         _json_text("rule_ids"), "rationale"))
        tables.add("predictions", [
            (*place, p[1], p[2], p[3], p[4], rules_text(rules), p[6])
            for place, p, rules in zip(where(p[0] for p in predictions), predictions,
                                       _json_values(p[5] for p in predictions))])
        tables.add("ratings", [
            (*where((r["item__epoch_id"],))[0], r["item__campaign__name"], r["item__position"], r["item__origin"],
             r["item__model_version__name"] or r["item__source"], self.rater[r["rater_id"]], dimension, score,
             r["rubric__version"], r["fast"])
            for r in ratings for dimension, score in r["scores"].items()])
        tables.add("notes", [
            (*where((r["item__epoch_id"],))[0], r["item__campaign__name"], r["item__position"],
             self.rater[r["rater_id"]], r["note"], r["corrected_stage"], rules_text(r["corrected_rule_ids"]))
            for r in ratings if r["note"] or r["corrected_stage"] or r["corrected_rule_ids"]])
        if self.release.include_images:
            self._images(recording, subject, epochs, stages, number, root)
        return subject, exported

    def _consensus_rows(self, consensus, epochs, where) -> list[tuple]:
        rows = []
        for campaign in self.scoring:
            summaries = sorted((s for s in consensus[campaign.pk].values() if s.labels),
                               key=lambda s: epochs[s.epoch_id][1])
            rows += [(*place, campaign.name, s.stage, s.majority, s.level, len(s.labels), s.tie, s.adjudicated)
                     for place, s in zip(where(s.epoch_id for s in summaries), summaries)]
        return sorted(rows, key=lambda r: (r[2], r[3]))  # epoch index, campaign

    def _images(self, recording, subject, epochs, stages, number, root: Path) -> None:
        folder = root / "images" / subject
        folder.mkdir(parents=True, exist_ok=True)
        images = EpochImage.objects.filter(epoch__recording=recording, kind=EpochImage.MODEL, variant="")
        for epoch_id, name in images.values_list("epoch_id", "storage_name"):
            if epoch_id in stages:
                with default_storage.open(name, "rb") as source:
                    (folder / f"{number[epoch_id]}_{stages[epoch_id]}.png").write_bytes(source.read())

    # --- release-wide files ----------------------------------------------------------------------

    def pseudonymise(self, value):
        """Statistics with every rater's username replaced by their release pseudonym."""
        from django.contrib.auth import get_user_model

        names = dict(get_user_model().objects.filter(pk__in=self.rater).values_list("username", "pk"))
        swap = {name: self.rater[pk] for name, pk in names.items()}

        def walk(v):  # a part with no username in it is kept as it is, not copied
            if isinstance(v, dict):
                out = {swap.get(k, k) if isinstance(k, str) else k: walk(x) for k, x in v.items()}
                same = len(out) == len(v) and all(k is j and x is y for (k, x), (j, y) in zip(out.items(), v.items()))
                return v if same else out
            if isinstance(v, list | tuple):
                out = [walk(x) for x in v]
                return v if all(a is b for a, b in zip(out, v)) else out
            return swap.get(v, v) if isinstance(v, str) else v
        return walk(value)

    def agreement(self) -> dict:
        return self.pseudonymise({
            "scoring": {c.name: scoring_statistics(c) for c in self.scoring},
            "rating": {c.name: rating_statistics(c) for c in self.rating},
        })


def _write_csv(path: Path, columns: list[str], rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


_EMPTY_JSON = ("[]", "null", None)


def _json_text(field: str) -> Cast:
    """A JSON column read as its text (decoded in one go by _json_values, not row by row)."""
    return Cast(field, TextField())


def _json_values(texts) -> list:
    """The JSON texts of a column, decoded by one call (None: SQL NULL)."""
    return json.loads("[" + ",".join("null" if text is None else text for text in texts) + "]")


def rules_markdown() -> str:
    lines = ["# AASM rule catalog", "", "The rule ids that applicable_rules cites (AASM scoring manual v3).", "",
             "| id | stage | title | text |", "|---|---|---|---|"]
    for rule in AasmRule.objects.order_by("position", "rule_id"):
        lines.append(f"| {rule.rule_id} | {rule.stage} | {rule.title} | {rule.text.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _basis(key: str, figure: dict) -> str:
    """The items (and raters) behind a scoring campaign's figure, as the dashboard states them."""
    if key == "fleiss_kappa":
        return f"{figure['n_items']} items × {figure['ratings_per_item']} ratings each, {figure['raters']} raters"
    if key == "krippendorff_alpha":
        return f"{figure['n_items']} items with 2+ ratings, {figure['raters']} raters"
    return f"{figure['n']} {'labels' if key == 'agreement_with_majority' else 'items'} on the items with 2+ ratings"


def agreement_markdown(agreement: dict) -> str:
    out = ["# Agreement", ""]
    for name, stats in agreement["scoring"].items():
        out += [f"## Scoring campaign {name}", "", f"{stats['labels']} labels of {stats['items']} epochs "
                f"(overlap {stats['overlap']}).", ""]
        for key, title in (("fleiss_kappa", "Fleiss' kappa"), ("krippendorff_alpha", "Krippendorff's alpha (nominal)"),
                           ("percent_agreement", "Pairwise agreement"), ("agreement_with_majority", "Agreement with the majority")):
            if key in stats:
                figure = stats[key]
                interval = (f" [{agreement_text(figure['low'])}, {agreement_text(figure['high'])}]"
                            if "low" in figure else "")
                out.append(f"- {title}: {agreement_text(figure['value'])}{interval} ({_basis(key, figure)})")
        for pair in stats.get("pairwise", []):
            out.append(f"- Cohen's kappa {pair['a']} / {pair['b']}: {agreement_text(pair['kappa'])} "
                       f"({pair['n']} epochs)")
        out.append("")
    for name, stats in agreement["rating"].items():
        out += [render_report(stats, "md").replace("# Rating campaign", "## Rating campaign", 1).replace("\n## ", "\n### "), ""]
    return "\n".join(out).rstrip() + "\n"


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def dataset_card(release, counts: dict, stage_counts: Counter, fine_epochs: int, subjects: int) -> str:
    configs = [("coarse", "annotations/parquet/coarse.parquet"), ("fine", "annotations/parquet/fine.parquet")]
    configs += [(name, f"tables/{name}.parquet") for name in EXTRA_TABLES]
    front = ["---", f"license: {release.license_id}", f"pretty_name: {release.name} {release.version}",
             "size_categories:", f"- {size_category(counts['epochs'])}", "configs:"]
    for name, path in configs:
        front += [f"- config_name: {name}", "  data_files:", "  - split: train", f"    path: {path}"]
    front.append("---")
    body = [f"# {release.name} {release.version}", "", release.description or "", "",
            "MASS-EX-compatible annotations exported by SleepReview: `annotations/coarse/<subject>.csv` (stage and "
            "rule ids) and `annotations/fine/<subject>.csv` (with the expert rationale), numbered as MASS-EX numbers "
            "them (N is the rank among the subject's scored epochs). Further tables, in CSV and Parquet under "
            "`tables/`, are long format with pseudonymous raters.", "",
            "## Counts", "", f"- subjects: {subjects}", f"- epochs (coarse): {counts['epochs']}",
            f"- epochs with an expert rationale (fine): {fine_epochs}", "", "| stage | epochs |", "|---|---|"]
    body += [f"| {s} | {stage_counts.get(s, 0)} |" for s in STAGES]
    body += ["", "## How it was made", "",
             f"- stage source: {release.get_stage_source_display()}",
             f"- cohorts: {', '.join(c.name for c in release.cohorts.order_by('name'))}",
             f"- scoring campaigns: {', '.join(c.name for c in release.scoring_campaigns.order_by('name')) or 'none'}",
             f"- rating campaigns: {', '.join(c.name for c in release.rating_campaigns.order_by('name')) or 'none'}",
             "- model versions: " + (", ".join(f"{v.name} (settings {v.settings_hash[:12]})"
                                             for v in release.model_versions.order_by("name")) or "none"),
             "- applicable_rules: a rating's expert correction, else the reference rules, else a scoring "
             "campaign's rationale-mode rule ids; reasoning_text: the reference rationale, else a rationale-mode one",
             "", "## License", "", release.license_text or release.license_id, ""]
    return "\n".join(front + body)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(root: Path) -> None:
    """MANIFEST.sha256: `<sha256>  <path>` of every other file, sorted by path."""
    paths = sorted((p for p in root.rglob("*") if p.is_file() and p != root / "MANIFEST.sha256"),
                   key=lambda p: p.relative_to(root).as_posix())
    lines = [f"{sha256_of(p)}  {p.relative_to(root).as_posix()}" for p in paths]
    (root / "MANIFEST.sha256").write_text("\n".join(lines) + "\n", encoding="utf-8")


# A float orjson writes in another notation than Python's repr (below 1e-4), at a value's place in indented JSON.
_FLOAT_NOTATION = re.compile(rb"(?<![^ \n])(-?(?:0\.0000\d*|\d+(?:\.\d+)?e[-+]?\d+))(?=,?(?:\n|\Z))")


def write_json(path: Path, value) -> None:
    """Write `json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)` and a newline, byte
    for byte (UTF-8); by orjson (the standard library's indented encoder is pure Python: seconds on a large
    agreement.json) whenever `value` holds only JSON's own types and finite floats (NaN, subclasses, dates
    and other types: the standard library writes it), with its floats in Python's notation. The text is
    written as encoded, never copied (a large document's text is tens of MB)."""
    with open(path, "wb") as handle:
        handle.write(_json_bytes(value))
        handle.write(b"\n")


def _json_bytes(value) -> bytes:
    if _plain(value):
        try:
            raw = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        except TypeError:  # a key that is not a str, an int beyond 64 bits
            raw = None
        if raw is not None:
            return _FLOAT_NOTATION.sub(lambda m: repr(float(m.group())).encode(), raw) if _other_notation(raw) else raw
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str).encode()


_SCALAR_TYPES = frozenset((str, int, bool, type(None)))


def _plain(value) -> bool:
    """Whether `value` is made of dicts, lists, tuples, str, int, bool, None and finite floats only (exact
    types: orjson and the standard library write these alike); one pass, no copy."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float:
            if item - item != 0.0:  # NaN or infinite
                return False
        elif kind not in _SCALAR_TYPES:
            return False
    return True


def _other_notation(raw: bytes) -> bool:
    """Whether orjson's text may hold a float below 1e-4 (a cheap scan: the regex is slow on large texts)."""
    if b"0.0000" in raw:
        return True
    for mark in (b"e-", b"e+"):
        at = raw.find(mark)
        while at > 0:
            if raw[at - 1:at].isdigit():
                return True
            at = raw.find(mark, at + 1)
    return False


def compare_rows(before: Iterable[dict], now: Iterable[dict], key: tuple[str, ...], compared: tuple[str, ...],
                 shown: int) -> dict[str, tuple[int, list[tuple]]]:
    """Rows of a table named by their `key` columns, before and now: for 'added', 'changed' (in a `compared`
    column) and 'removed', how many, and the first `shown` row keys in order. The rows before are held as one
    string per row (its key columns joined by NUL, which orders as their tuple), those of now streamed past them:
    with both held whole as dicts and tuples, a second version of 100,000 epochs peaked at 669 MB."""
    def joined(row, columns):
        return "\0".join(row[c] for c in columns)

    then = {joined(row, key): sys.intern(joined(row, compared)) for row in before}  # few distinct values
    noted = {"added": [], "changed": [], "removed": []}
    counts = dict.fromkeys(noted, 0)

    def note(change, row_key):
        counts[change] += 1
        kept = noted[change]
        kept.append(row_key)
        if len(kept) >= 8 * shown + 64:  # keep the smallest only, sorting now and then
            kept.sort()
            del kept[shown:]

    for row in now:
        row_key = joined(row, key)
        values = then.pop(row_key, None)
        if values is None:
            note("added", row_key)
        elif values != joined(row, compared):
            note("changed", row_key)
    for row_key in then:
        note("removed", row_key)
    return {change: (counts[change], [tuple(k.split("\0")) for k in sorted(kept)[:shown]])
            for change, kept in noted.items()}


class Changelog:
    """Against the previous release: epochs added, removed, and changed in stage, rules or rationale (compared
    subject by subject, the previous CSVs of one subject at a time read from storage), then stage labels and
    ratings added, changed or removed (the long tables, compared whole). A label is one rater's pass over an
    epoch in a campaign, a rating one rater's score of an item's dimension; raters by their release pseudonym."""

    KINDS = ("added", "removed", "changed_stage", "changed_rules", "changed_rationale",
             "labels_added", "labels_changed", "labels_removed", "ratings_added", "ratings_changed", "ratings_removed")
    TITLES = ("Epochs added", "Epochs removed", "Stage changed", "Rules changed", "Rationale changed",
              "Labels added", "Labels changed", "Labels removed", "Ratings added", "Ratings changed", "Ratings removed")
    # table -> (the columns that name a row, the columns compared)
    ANSWERS = {"stage_labels": (("subject", "epoch_index", "campaign", "rater", "pass"), ("stage", "uncertain")),
               "ratings": (("subject", "epoch_index", "campaign", "item", "rater", "dimension"), ("score",))}
    SHOWN = 50

    def __init__(self, release):
        self.release = release
        files = release.previous.files.filter(archive=False) if release.previous else []
        self.previous = {f.path: f.storage_name for f in files}
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.examples = {kind: [] for kind in self.KINDS}
        self.seen: set[str] = set()

    def _read(self, path) -> Iterator[dict]:
        """The rows of the previous release's file `path` (none where it had none), read as they are used."""
        name = self.previous.get(path)
        if not name:
            return
        with default_storage.open(name, "rb") as handle:
            yield from csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))

    def _previous(self, subject) -> dict[int, tuple]:
        rows: dict[int, tuple] = {}
        for kind in ("coarse", "fine"):  # fine after coarse: it adds the rationale
            for row in self._read(f"annotations/{kind}/{subject}.csv"):
                rows[int(row["N"])] = (row["Stage"], row["applicable_rules"], row.get("reasoning_text", ""))
        return rows

    def _note(self, kind, where):
        self.counts[kind] += 1
        if len(self.examples[kind]) < self.SHOWN:
            self.examples[kind].append(where)

    def compare(self, subject: str, current: dict[int, tuple]) -> None:
        if self.release.previous is None:
            return
        self.seen.add(subject)
        previous = self._previous(subject)
        for n in sorted(set(current) | set(previous)):
            if n not in previous:
                self._note("added", f"{subject}#{n}")
            elif n not in current:
                self._note("removed", f"{subject}#{n}")
            else:
                for kind, now, before in zip(self.KINDS[2:5], current[n], previous[n]):
                    if now != before:
                        self._note(kind, f"{subject}#{n}")

    def _compare_answers(self, root: Path) -> None:
        for table, (key, compared) in self.ANSWERS.items():
            what = "labels" if table == "stage_labels" else "ratings"
            with open(root / "tables" / f"{table}.csv", encoding="utf-8", newline="") as handle:
                found = compare_rows(self._read(f"tables/{table}.csv"), csv.DictReader(handle), key, compared,
                                     self.SHOWN)
            for change, (count, examples) in found.items():
                self.counts[f"{what}_{change}"] += count
                self.examples[f"{what}_{change}"].extend(
                    " · ".join([f"{row_key[0]} epoch_index {row_key[1]}", *row_key[2:]]) for row_key in examples)

    def finish(self, root: Path) -> dict:
        """The counts, with the written tables under `root` compared; the epochs of subjects this release no
        longer has counted as removed."""
        if self.release.previous is None:
            return dict(self.counts)
        coarse = [p for p in self.previous if p.startswith("annotations/coarse/")]
        for subject in sorted({p.rsplit("/", 1)[-1].removesuffix(".csv") for p in coarse} - self.seen):
            for n in sorted(self._previous(subject)):
                self._note("removed", f"{subject}#{n}")
        self._compare_answers(root)
        return dict(self.counts)

    def markdown(self) -> str:
        release = self.release
        if release.previous is None:
            return f"# Changelog\n\n## {release.version}\n\nFirst release of {release.name}.\n"
        lines = ["# Changelog", "", f"## {release.version} (against {release.previous.version})", ""]
        for kind, title in zip(self.KINDS, self.TITLES):
            more = self.counts[kind] - len(self.examples[kind])
            shown = ", ".join(self.examples[kind]) + (f", and {more} more" if more else "")
            lines.append(f"- {title}: {self.counts[kind]}" + (f" ({shown})" if self.examples[kind] else ""))
        return "\n".join(lines) + "\n"
