"""Rule ``check_dataset``: does the copy hold the benchmark it is configured as?

Writes ``results/<dataset>/dataset_check.json`` (:func:`hscvad.data.check.check_dataset`): the videos
per split, frames per test video and abnormal frames found, the benchmark's, and every difference.
A difference stops the run with the list, unless ``datasets.<name>.allow_partial`` is set: then it
is a warning, and ``evaluate`` records the list in ``auc.json`` (``partial_dataset``).
"""

from __future__ import annotations

from ..data import DatasetError, build_dataset
from ..data.check import check_dataset
from ..h5store import write_json
from ..settings import DATASET
from .common import log, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, "benchmark=datasets.{dataset}.benchmark", "allow_partial=datasets.{dataset}.allow_partial")


def _bar(items):
    items = list(items)
    with progress(len(items), "count test frames", unit="video") as bar:
        for v in items:
            yield v
            bar.update(1)


def run(dataset_name: str, params: dict, output: str) -> dict:
    ds = build_dataset(dataset_name, params["dataset"])
    result = check_dataset(ds, params["benchmark"], progress=_bar)
    result["allow_partial"] = params["allow_partial"]
    diffs = result["differences"]
    for w in result["warnings"]:
        log.warning("check_dataset %s: %s", dataset_name, w)
    if diffs:
        listing = "; ".join(diffs)
        if not params["allow_partial"]:
            raise DatasetError(
                f"{ds.root} is not the complete {params['benchmark']} benchmark: {listing}. "
                f"Complete the copy, or set datasets.{dataset_name}.allow_partial: true to run on it anyway "
                "(auc.json then records partial_dataset)"
            )
        log.warning("check_dataset %s: partial copy of %s (allow_partial): %s", dataset_name,
                    params["benchmark"], listing)
    f = result["found"]
    log.info("check_dataset %s: %d training / %d test videos, %d test frames, %s abnormal; %s", dataset_name,
             f["train_videos"], f["test_videos"], f["test_frames"], f["abnormal_frames"],
             "matches the benchmark" if result["complete"] else
             ("no benchmark configured" if result["complete"] is None else "PARTIAL"))
    write_json(output, result)
    return result


def main(job) -> None:
    run(job.dataset, job.params, job.output[0])
