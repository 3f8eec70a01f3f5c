"""How `twotower bench quality` writes reports/quality.json: a MovieLens run of some protocols
keeps the other protocols' keys (and records which commit measured each), and another
dataset's rows (marked `dataset`) replace that dataset's rows beside MovieLens's."""
from __future__ import annotations

import json
import pathlib
from typing import Any, Optional, Sequence

from benchmarks import common, protocols, quality_rows


def protocol_runs(report: dict[str, Any], measured: Sequence[str], commit: str
                  ) -> tuple[list[str], dict[str, str], list[str]]:
    """(every protocol in the report after this run, protocol -> commit that measured it,
    the protocols kept from earlier runs) for a MovieLens run of `measured`."""
    earlier = {protocol: report.get("git") for protocol in report["config"].get("protocols", [])}
    runs = {**earlier, **report["config"].get("protocol_runs", {}),
            **{protocol: commit for protocol in measured}}
    ordered = [protocol for protocol in protocols.PROTOCOLS if protocol in runs]
    kept = sorted(set(runs) - set(measured))
    return ordered, {protocol: runs[protocol] for protocol in ordered}, kept


def protocol_of(key: str) -> Optional[str]:
    """The protocol a report key belongs to (its prefix), or None (name, overrides, ...)."""
    for protocol in protocols.PROTOCOLS:
        if key.startswith(f"{protocol}_") or key == f"examples_per_sec_{protocol}":
            return protocol
    return None


def keep_other_protocols(old_rows: list[dict[str, Any]], new_rows: list[dict[str, Any]],
                         measured: Sequence[str]) -> list[dict[str, Any]]:
    """New rows, each with the old row's keys of the protocols this run did not measure.
    Old rows this run did not produce keep only those keys too (their keys of the measured
    protocols came from other defaults), and are dropped when nothing is left."""
    old = {row["name"]: row for row in old_rows}
    merged = []
    for row in new_rows:
        base = {key: value for key, value in old.get(row["name"], {}).items()
                if protocol_of(key) not in (None, *measured)}
        merged.append({**base, **row})
    names = {row["name"] for row in new_rows}
    for name, row in old.items():
        kept = {key: value for key, value in row.items()
                if protocol_of(key) is None or protocol_of(key) not in measured}
        if name not in names and any(protocol_of(key) for key in kept):
            merged.append(kept)
    return sorted(merged, key=lambda r: order(r["name"]))


def read_report(out: Optional[pathlib.Path]) -> dict[str, Any]:
    """The existing quality report, or an empty one."""
    path = out or common.REPORTS_DIR / "quality.json"
    return json.loads(path.read_text()) if path.is_file() else {"config": {}, "rows": [],
                                                                 "notes": ""}


def merge_dataset_rows(dataset: str, rows: list[dict[str, Any]], config: dict[str, Any],
                       seconds: float, out: Optional[pathlib.Path], commit: str) -> pathlib.Path:
    """Writes `dataset`'s rows (each marked `dataset`) into the quality report, replacing
    that dataset's earlier rows and keeping the others; a run of some of its protocols
    keeps the earlier rows' keys of the others (keep_other_protocols). Its config, commit,
    time and the commit that measured each protocol go to config.datasets.<dataset>."""
    path = out or common.REPORTS_DIR / "quality.json"
    report = read_report(out)
    kept = [row for row in report["rows"] if row.get("dataset") != dataset]
    earlier = report["config"].get("datasets", {}).get(dataset, {})
    measured = list(config["protocols"])
    runs = {**{protocol: earlier.get("git") for protocol in earlier.get("protocols", [])},
            **earlier.get("protocol_runs", {}), **{protocol: commit for protocol in measured}}
    marked = keep_other_protocols([row for row in report["rows"] if row.get("dataset") == dataset],
                                  [{**row, "dataset": dataset} for row in rows], measured)
    by_name = {row["name"]: row for row in marked}
    others = sorted(set(runs) - set(measured))
    note = (f"{dataset}: rows marked dataset={dataset}, measured in one run of "
            f"{seconds / 60:.0f} min at {commit}"
            + (f" (the keys of {others} kept from config.datasets.{dataset}.protocol_runs)"
               if others else "") + "; temporal split only; "
            "temporal_unfiltered_* rank every catalogue item (as the served model does); "
            "temporal_* first remove the user's other training items (never the true one), "
            "which flatters repeat purchases. A repeat purchase is a hit under both. "
            "temporal_served_* score every eval event with the query carrying its user's "
            "training history and rank every item as the served model does (repeat term "
            "or exclusion by the config's index settings).")
    default, mostpop = by_name.get("default"), by_name.get(quality_rows.MOSTPOP)
    if default and mostpop:
        note += " default/mostpop: " + ", ".join(
            f"{key} {default[key] / mostpop[key]:.2f}x" for key in (
                "temporal_unfiltered_recall_at_10", "temporal_unfiltered_recall_at_100",
                "temporal_recall_at_10", "temporal_recall_at_100") if mostpop.get(key)) + "."
    ptopfreq = by_name.get(quality_rows.PTOPFREQ)
    if default and ptopfreq and ptopfreq.get("temporal_served_recall_at_10"):
        note += " default/ptopfreq as served: " + ", ".join(
            f"{key} {default[key] / ptopfreq[key]:.2f}x" for key in (
                "temporal_served_recall_at_10", "temporal_served_recall_at_100")
            if key in default) + "."
    priors = [row for row in marked if row["name"].startswith("default")
              and "temporal_unfiltered_recall_at_10" in row]
    if len(priors) > 1:
        best = max(priors, key=lambda row: row["temporal_unfiltered_recall_at_10"])
        note += (f" default+prior_<b> score the default model with other popularity prior "
                 f"weights; the best temporal_unfiltered_recall_at_10 here is {best['name']} "
                 f"({best['temporal_unfiltered_recall_at_10']:.4f} vs default "
                 f"{by_name['default']['temporal_unfiltered_recall_at_10']:.4f}).")
    notes = " ".join(part for part in report.get("notes", "").split(" || ")
                     if not part.startswith(f"{dataset}:"))
    ordered = [protocol for protocol in protocols.PROTOCOLS if protocol in runs]
    datasets = {**report["config"].get("datasets", {}), dataset: {
        **config, "git": commit, "protocols": ordered,
        "protocol_runs": {protocol: runs[protocol] for protocol in ordered}}}
    return common.write_report("quality", {**report["config"], "datasets": datasets},
                               kept + marked, " || ".join(filter(None, [notes, note])), path,
                               report.get("git", commit))


def order(name: str) -> int:
    names = list(quality_rows.ROW_NAMES)
    return names.index(name) if name in names else len(names)


def brief(row: dict[str, Any]) -> str:
    """A row's headline figures for the progress log."""
    keys = ("tfrs_top_100", "temporal_recall_at_10", "temporal_recall_at_100",
            "temporal_served_recall_at_10", "temporal_served_recall_at_100",
            "temporal_tail_share_at_100", "recbole_recall_at_10",
            "history_recall_at_10", "history_recall_at_100", "examples_per_sec_tfrs",
            "examples_per_sec_temporal", "examples_per_sec_history")
    return ", ".join(f"{key} {row[key]:.4g}" for key in keys if key in row)


def notes(rows: list[dict[str, Any]], seconds: float, part: str) -> str:
    """The report's notes: where it was scored and the headline ratios."""
    by_name = {row["name"]: row for row in rows}
    split_note = (
        "Scored on the VALIDATION splits (each protocol's split applied to its training "
        "part; benchmarks/protocols.py): this is where defaults are chosen."
        if part == "validation" else
        "Scored on the eval splits, once per row; the defaults (popularity prior weight, "
        "temperature, loss) were chosen on the validation splits "
        "(reports/quality_validation.json), not here.")
    parts = [f"Measured in one run of {seconds / 60:.0f} min. {split_note} Rows after "
             "mostpop use the default training settings; only baseline uses the TFRS "
             "tutorial's (Adagrad 0.1, batch 8192). default+prior_<b> rows score the same "
             "trained default model with other popularity prior weights (0: no prior)."]
    base, default = by_name.get("baseline"), by_name.get("default")
    if base and default:
        for key in ("tfrs_top_100", "examples_per_sec"):
            if key in base and key in default:
                parts.append(f"default/baseline {key}: {default[key] / base[key]:.2f}x.")
    return " ".join(parts)
