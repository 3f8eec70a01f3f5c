"""The files `twotower schema init` writes from its decisions (pipeline/schema_init.py): the
TFMD schemas (TFDV's inference on the sample, typed by the decisions), features.yaml and a
config `twotower run` accepts as is."""
from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Optional, Sequence

import pandas as pd
import yaml

from twotower import contract as contract_lib

if TYPE_CHECKING:
    from pipeline.schema_init import Decision


def parses(values: pd.Series, kind: type) -> bool:
    """Whether every value converts with `kind` (int or float)."""
    try:
        values.map(kind)
        return True
    except (TypeError, ValueError):
        return False


def input_format(path: str) -> str:
    return "parquet" if ".parquet" in path or (
        os.path.isdir(path) and any(p.suffix == ".parquet" for p in pathlib.Path(path).iterdir())
    ) else "csv"


def _schema_type(decision: "Decision", values: pd.Series) -> str:
    if decision.kind == contract_lib.NUMERIC:
        return "INT" if parses(values[values != ""], int) else "FLOAT"
    if decision.kind == contract_lib.TIMESTAMP:
        return "INT"
    if decision.role == contract_lib.IGNORED:
        present = values[values != ""]
        if not present.empty and parses(present, int):
            return "INT"
        if not present.empty and parses(present, float):
            return "FLOAT"
    return "BYTES"


def schema_text(frame: pd.DataFrame, decisions: Sequence["Decision"], table: str) -> str:
    """A TFMD schema (text proto) for one table: TFDV's inference on the sample, with each
    column's type set by its decision, presence required only for ids and the event time,
    and no enumerated string domains."""
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=import-outside-toplevel
    by_column = {d.column: d for d in decisions if d.role != "not used"}
    columns = [c for c in frame.columns if c in by_column]
    typed = pd.DataFrame({c: frame[c].replace("", None) for c in columns})
    schema = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(typed),
                               max_string_domain_size=0)
    del schema.string_domain[:]
    required = (contract_lib.USER_ID, contract_lib.ITEM_ID, contract_lib.EVENT_TIME)
    for feature in schema.feature:
        decision = by_column[feature.name]
        feature.type = schema_pb2.FeatureType.Value(_schema_type(decision, frame[feature.name]))
        feature.ClearField("domain")
        feature.ClearField("int_domain")
        feature.ClearField("float_domain")
        feature.ClearField("presence")
        feature.presence.min_count = 1
        if decision.role in required:
            feature.presence.min_fraction = 1.0
        feature.ClearField("shape")
        feature.value_count.min = 1
        feature.value_count.max = 1
    for decision in decisions:
        if decision.kind == contract_lib.HISTORY and table == "interactions":
            derived = schema.feature.add(name=decision.column, type=schema_pb2.BYTES)
            derived.value_count.min = 1
            derived.value_count.max = dict(decision.settings)["length"]
    header = (f"# TFMD schema of the {table} table, proposed by `twotower schema init` from a "
              "sample.\n# ExampleValidator checks the data against it; roles and kinds are in "
              "features.yaml.\n")
    return header + text_format.MessageToString(schema)


def features_yaml(decisions: Sequence["Decision"], anonymous_users: bool = False) -> str:
    """features.yaml text, one line per declared column with its reason as a comment (and
    `users: anonymous` first when asked for)."""
    lines = ["# Data contract proposed by `twotower schema init`: edit roles, kinds and",
             "# settings, then run. Format: README 'Bring your own data'."]
    if anonymous_users:
        lines.append(f"{contract_lib.USERS_KEY}: {contract_lib.ANONYMOUS}  # --anonymous-users: "
                     "no user id; the query tower reads the query features only")
    lines.append("features:")
    for d in decisions:
        if d.role == "not used":
            continue
        fields = {"role": d.role}
        if d.kind and d.role in (contract_lib.QUERY, contract_lib.CANDIDATE):
            fields["kind"] = d.kind
        fields.update(dict(d.settings))
        body = yaml.safe_dump(fields, default_flow_style=True, width=1000,
                              sort_keys=False).strip()
        lines.append(f"  {yaml.safe_dump(d.column).strip().removesuffix('...').strip()}: "
                     f"{body}  # {d.reason}")
    return "\n".join(lines) + "\n"


def config_yaml(name: str, interactions: str, items: str, out_dir: str,
                event_time: Optional[str]) -> str:
    """A config `twotower run --config` accepts as is (absolute paths)."""
    config = {
        "data": {"interactions": os.path.abspath(interactions), "items": os.path.abspath(items),
                 "input_format": input_format(interactions),
                 "split": "time" if event_time else "hash",
                 "schema_dir": os.path.abspath(out_dir)},
        "orchestration": {"pipeline_name": name, "pipeline_root": f"runs/{name}"},
        "serving": {"model_name": name},
    }
    return (f"# {name}: written by `twotower schema init`. Every field not listed keeps its "
            "default (`twotower config`).\n" + yaml.safe_dump(config, sort_keys=False))
