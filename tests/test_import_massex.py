"""import_massex loads a MASS-EX folder onto a cohort's recordings: row N on the scored epoch of rank N, all or nothing."""
import csv

import pytest
from django.core.management import CommandError, call_command

from datasets.models import Epoch
from datasets.services.hypnograms import ScoredEpoch
from datasets.services.massex import ranks
from tests.factories import make_recording

FINE = ("custom_id", "Subject", "N", "Stage", "reasoning_text", "applicable_rules")
COARSE = ("custom_id", "Subject", "N", "Stage", "applicable_rules")
TRICKY = 'Alpha "dominant", blinks;\nsecond line, too'


def recording(name, stages):
    made = make_recording("mass", name, stages)
    epochs = list(made.epochs.order_by("index"))
    for epoch, n in zip(epochs, ranks([ScoredEpoch(30.0 * e.index, e.stage) for e in epochs])):
        epoch.massex_n = n
    Epoch.objects.bulk_update(epochs, ["massex_n"])
    return made


def write(folder, subset, subject, rows):
    """rows: (N, Stage, rules[, reasoning]); fine rows carry reasoning_text."""
    path = folder / "annotations" / subset / f"{subject}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FINE if subset == "fine" else COARSE)
        for n, stage, rules, *reasoning in rows:
            writer.writerow([f"{subject}#{n}_{stage}", subject, n, stage, *reasoning, rules])
    return path


def reference(name):
    return list(Epoch.objects.filter(recording__name=name).order_by("index")
                .values_list("index", "massex_n", "reference_rules", "reference_rationale"))


def snapshot():
    return list(Epoch.objects.order_by("recording__name", "index").values_list("reference_rules", "reference_rationale"))


@pytest.fixture
def cohort(db):
    recording("01-03-0001 PSG", ["W", "unscored", "N1", "N2", "N2"])
    recording("01-03-0002", ["W", "N1", "unscored", "R"])
    Epoch.objects.filter(recording__name="01-03-0002", index=3).update(reference_rules=["R.1"], reference_rationale="old")


def fine_and_coarse(folder):
    write(folder, "fine", "01-03-0001", [(0, "W", "W.1, W.2", "Alpha, blinks"), (2, "N2", "", TRICKY)])
    write(folder, "coarse", "01-03-0001", [(1, "N1", "N1.1"), (2, "N2", "N2.1"), (3, "N2", "N2.1")])
    write(folder, "coarse", "01-03-0002", [(0, "W", "W.1"), (1, "N1", "")])


def test_fine_and_coarse_load_onto_the_scored_epochs_by_rank(cohort, tmp_path, capsys):
    fine_and_coarse(tmp_path)
    call_command("import_massex", str(tmp_path), "--cohort", "mass", verbosity=0)
    assert reference("01-03-0001 PSG") == [
        (0, 0, ["W.1", "W.2"], "Alpha, blinks"),
        (1, None, [], ""),
        (2, 1, ["N1.1"], ""),
        (3, 2, [], TRICKY),  # the fine row wins, its empty rules included
        (4, 3, ["N2.1"], ""),
    ]
    assert reference("01-03-0002") == [(0, 0, ["W.1"], ""), (1, 1, [], ""), (2, None, [], ""), (3, 2, [], "")]
    assert "2 subject(s) loaded onto cohort mass: 4 epochs with rules, 2 with rationale" in capsys.readouterr().out


def test_running_twice_changes_nothing(cohort, tmp_path, capsys):
    fine_and_coarse(tmp_path)
    call_command("import_massex", str(tmp_path), "--cohort", "mass", verbosity=0)
    first = snapshot()
    capsys.readouterr()
    call_command("import_massex", str(tmp_path), "--cohort", "mass", verbosity=0)
    assert snapshot() == first
    assert "; 0 epochs changed" in capsys.readouterr().out


def refused(folder):
    before = snapshot()
    with pytest.raises(CommandError) as error:
        call_command("import_massex", str(folder), "--cohort", "mass", verbosity=0)
    assert snapshot() == before
    return str(error.value)


def test_shifted_numbering_is_refused_naming_file_and_line(cohort, tmp_path):
    fine_and_coarse(tmp_path)
    shifted = write(tmp_path, "coarse", "01-03-0002", [(0, "W", "W.1"), (2, "N1", ""), (3, "R", "")])
    message = refused(tmp_path)
    assert "nothing was written" in message
    assert f"{shifted}: line 3: N=2 Stage N1, but that epoch of recording '01-03-0002' (index 3) is R" in message
    assert f"{shifted}: line 4: N=3 is past the last scored epoch" in message


def test_a_subject_without_recording_is_refused(cohort, tmp_path):
    fine_and_coarse(tmp_path)
    stray = write(tmp_path, "coarse", "01-03-0009", [(0, "W", "")])
    assert f"{stray}: subject 01-03-0009 must match exactly one recording of cohort mass" in refused(tmp_path)


def test_an_unknown_rule_id_and_a_wrong_subject_column_are_both_reported(cohort, tmp_path):
    fine_and_coarse(tmp_path)
    bad = write(tmp_path, "coarse", "01-03-0002", [(0, "W", "W.9")])
    renamed = write(tmp_path, "coarse", "01-03-0001", [(1, "N1", "N1.1")])
    renamed.write_text(renamed.read_text().replace(",01-03-0001,", ",01-03-0002,"))
    message = refused(tmp_path)
    assert f"{bad}: line 2: unknown rule id 'W.9'" in message
    assert f"{renamed}: line 2: Subject '01-03-0002' disagrees with the file name '01-03-0001'" in message
