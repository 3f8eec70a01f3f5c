"""The data contract: what every column of a user's data is, declared once (docs/architecture.md).

A contract folder (`data.schema_dir`) holds three files:
  features.yaml       every column's role and kind, with optional per-feature settings;
  interactions.pbtxt  the TFMD schema ExampleValidator checks the interaction log against;
  items.pbtxt         the TFMD schema of the item catalogue.
`load` reads all three, checks that they agree, and returns a `Contract`: the one place every
stage (ingestion, NegativePoolBuilder, Trainer, IndexBuilder, ModelValidator, server checks,
client) takes the feature set from. No stage names a dataset's column.

features.yaml:

    features:
      user_id:   {role: user_id}                  # query tower's id (kind id)
      item_id:   {role: item_id}                  # candidate tower's id (kind id)
      timestamp: {role: event_time, format: iso8601}  # the time split's key (format:
                                                      # twotower/event_times.py)
      rating:    {role: ignored}
      age:       {role: query, kind: numeric, buckets: 8}
      device:    {role: query, kind: categorical} # a per-event context column
      genres:    {role: candidate, kind: multi_categorical, separator: "|"}
      title:     {role: candidate, kind: text}
      recent:    {role: query, kind: history, length: 20}  # built by ingestion, not in the files

Roles: `user_id`, `item_id`, `event_time` (one each; event_time optional with a hash split),
`query` (a query-tower input taken from the interaction row: user attributes, per-event
context, or the `history` the pipeline builds: the user's last items before the event),
`candidate` (a candidate-tower input taken from the catalogue row of the item),
`ignored` (validated, never used). Kinds and settings are in FeatureSpec.

Logs without a user id (anonymous sessions, kiosks) declare it at the top level instead of a
user_id column, so the missing id is a decision, not a guess:

    users: anonymous       # no user_id; the query tower reads the query (context) features
    features:
      item_id: {role: item_id}
      page:    {role: query, kind: categorical}

An anonymous contract needs at least one query feature and cannot declare a history (it is
built per user); evaluation then has no user's past items to filter.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional

import yaml

from twotower import event_times
from twotower.errors import ConfigError

FEATURES_FILE = "features.yaml"
INTERACTIONS_SCHEMA = "interactions.pbtxt"
ITEMS_SCHEMA = "items.pbtxt"

USER_ID, ITEM_ID, EVENT_TIME = "user_id", "item_id", "event_time"
USERS_KEY, ANONYMOUS = "users", "anonymous"  # features.yaml's `users: anonymous`
QUERY, CANDIDATE, IGNORED = "query", "candidate", "ignored"
ROLES = (USER_ID, ITEM_ID, EVENT_TIME, QUERY, CANDIDATE, IGNORED)
ID, CATEGORICAL, MULTI_CATEGORICAL = "id", "categorical", "multi_categorical"
NUMERIC, TEXT, TIMESTAMP, HISTORY = "numeric", "text", "timestamp", "history"
KINDS = (ID, CATEGORICAL, MULTI_CATEGORICAL, NUMERIC, TEXT, TIMESTAMP, HISTORY)
POOLINGS = ("mean", "recency")
# Kinds that take token vocabularies (computed by the NegativePoolBuilder).
VOCABULARY_KINDS = (ID, CATEGORICAL, MULTI_CATEGORICAL, TEXT)
STRING, INT64, FLOAT32 = "string", "int64", "float32"
# TFMD feature type -> dtype of the parsed tensor and of the served input.
SCHEMA_DTYPES = {"BYTES": STRING, "INT": INT64, "FLOAT": FLOAT32}
KIND_DTYPES = {ID: (STRING,), CATEGORICAL: (STRING,), MULTI_CATEGORICAL: (STRING,),
               TEXT: (STRING,), NUMERIC: (INT64, FLOAT32), TIMESTAMP: (INT64,),
               HISTORY: (STRING,)}


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One declared column.

    Attributes:
      name: Column name in the data.
      role: One of ROLES.
      kind: One of KINDS (`id` for the id roles; `timestamp` for event_time; empty for ignored).
      dtype: Parsed and served dtype (string, int64, float32), from the TFMD schema.
      separator: multi_categorical only: the separator between values ("a|b").
      embedding_dim: Width of this feature's embedding (default: model.feature_embedding_dim,
        model.id_embedding_dim for ids).
      max_tokens: Vocabulary cap: keep the most frequent values (null: all).
      min_count: Values seen fewer times map to the OOV buckets (ids: pool.min_count when
        not set).
      oov_buckets: Hashed buckets for out-of-vocabulary values.
      hash_bins: Hash values into this many buckets instead of a vocabulary (huge id spaces).
      buckets: numeric: quantile buckets (boundaries computed from the data).
      normalize: numeric: also feed the z-scored value (mean and std from the data).
      prefix: categorical: keep only the first N characters (e.g. a zip code's region).
      length: history: the user's last `length` items before the event.
      format: event_time only: how the files write the time (`seconds`, `milliseconds`,
        `iso8601` or a strptime pattern; twotower/event_times.py); ingestion reads it as
        integer seconds.
      pooling: history: `mean` of the items' embeddings, or `recency` (weights halving every
        `length` / 4 steps back). The defaults, 10 items and recency, were the best of 10,
        20 and 50 items by mean and recency pooling on the history protocol's validation
        split (benchmarks/quality_history.py; reports/quality_history_validation*.json).
    """

    name: str
    role: str
    kind: str
    dtype: str = STRING
    separator: Optional[str] = None
    embedding_dim: Optional[int] = None
    max_tokens: Optional[int] = None
    min_count: Optional[int] = None
    oov_buckets: int = 1
    hash_bins: Optional[int] = None
    buckets: int = 10
    normalize: bool = False
    prefix: Optional[int] = None
    length: int = 10
    pooling: str = "recency"
    format: str = event_times.SECONDS

    @property
    def has_vocabulary(self) -> bool:
        """Whether the NegativePoolBuilder computes a vocabulary for it."""
        return self.kind in VOCABULARY_KINDS and self.hash_bins is None

    @property
    def is_numeric(self) -> bool:
        return self.kind == NUMERIC

    @property
    def is_history(self) -> bool:
        return self.kind == HISTORY


SETTINGS = tuple(field.name for field in dataclasses.fields(FeatureSpec)
                 if field.name not in ("name", "role", "kind", "dtype"))


@dataclasses.dataclass(frozen=True)
class Contract:
    """The declared feature set, in declaration order.

    Attributes:
      features: Every declared column (and the derived history), in declaration order.
      anonymous_users: True when the contract declares `users: anonymous` (no user id).
    """

    features: tuple[FeatureSpec, ...]
    anonymous_users: bool = False

    def _one(self, role: str) -> Optional[FeatureSpec]:
        found = [feature for feature in self.features if feature.role == role]
        return found[0] if found else None

    @property
    def user_id(self) -> Optional[str]:
        """The user id column; None in an anonymous contract."""
        feature = self._one(USER_ID)
        return feature.name if feature else None

    @property
    def item_id(self) -> str:
        return self._one(ITEM_ID).name

    @property
    def event_time(self) -> Optional[str]:
        feature = self._one(EVENT_TIME)
        return feature.name if feature else None

    def by_name(self, name: str) -> FeatureSpec:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"{name!r} is not declared in the contract")

    def tower_features(self, tower: str) -> tuple[FeatureSpec, ...]:
        """The inputs of one tower (`query` or `candidate`), its id first (an anonymous
        contract's query tower has no id)."""
        id_feature = self._one(USER_ID if tower == QUERY else ITEM_ID)
        ids = (id_feature,) if id_feature else ()
        return ids + tuple(f for f in self.features if f.role == tower)

    @property
    def query_names(self) -> tuple[str, ...]:
        """Query tower inputs, user id first (if there is one)."""
        return tuple(feature.name for feature in self.tower_features(QUERY))

    @property
    def history(self) -> Optional[FeatureSpec]:
        """The history feature (built at ingestion from the item ids), if one is declared."""
        found = [feature for feature in self.features if feature.is_history]
        return found[0] if found else None

    @property
    def candidate_names(self) -> tuple[str, ...]:
        """Candidate tower inputs, item id first."""
        return tuple(feature.name for feature in self.tower_features(CANDIDATE))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form that `from_dict` reads back (dtypes included); the anonymous flag
        only when set, so the components' cache keys of other contracts stay as they were."""
        values: dict[str, Any] = {
            "features": [dataclasses.asdict(feature) for feature in self.features]}
        if self.anonymous_users:
            values["anonymous_users"] = True
        return values


def from_dict(values: Mapping[str, Any]) -> Contract:
    """The inverse of Contract.to_dict (e.g. a contract passed to a component)."""
    return Contract(tuple(FeatureSpec(**feature) for feature in values["features"]),
                    bool(values.get("anonymous_users", False)))


def _fail(source: str, name: str, problem: str) -> None:
    raise ConfigError(f"{source}: feature {name!r}: {problem}")


def parse_feature(name: str, values: Any, source: str) -> FeatureSpec:
    """One features.yaml entry -> FeatureSpec (dtype still the default).

    Raises:
      ConfigError: naming the file, the feature and the fix.
    """
    if not isinstance(values, Mapping):
        _fail(source, name, f"expected a mapping such as {{role: query, kind: categorical}}, "
                            f"got {values!r}")
    unknown = sorted(set(values) - {"role", "kind", *SETTINGS})
    if unknown:
        _fail(source, name, f"unknown setting(s) {unknown}; allowed: role, kind, "
                            f"{', '.join(SETTINGS)}")
    role = values.get("role")
    if role not in ROLES:
        _fail(source, name, f"role {role!r} is not one of {list(ROLES)}")
    kind = values.get("kind")
    implied = {USER_ID: ID, ITEM_ID: ID, EVENT_TIME: TIMESTAMP, IGNORED: ""}
    if role in implied:
        if kind not in (None, implied[role]):
            _fail(source, name, f"role {role} implies kind {implied[role] or 'none'}; remove "
                                f"kind: {kind}")
        kind = implied[role]
    elif kind not in KINDS or kind == ID:
        _fail(source, name, f"kind {kind!r} is not one of {[k for k in KINDS if k != ID]} "
                            f"(role {role} needs one; ids are roles user_id / item_id)")
    settings = {key: values[key] for key in SETTINGS if key in values}
    if "separator" in settings and kind != MULTI_CATEGORICAL:
        _fail(source, name, f"separator applies only to kind multi_categorical (this is "
                            f"{kind or role}); remove it or change the kind")
    if kind == MULTI_CATEGORICAL and not settings.get("separator"):
        _fail(source, name, "kind multi_categorical needs a separator, e.g. separator: \"|\"")
    if "prefix" in settings and kind != CATEGORICAL:
        _fail(source, name, "prefix applies only to kind categorical")
    if ("buckets" in settings or "normalize" in settings) and kind != NUMERIC:
        _fail(source, name, "buckets and normalize apply only to kind numeric")
    if ("length" in settings or "pooling" in settings) and kind != HISTORY:
        _fail(source, name, "length and pooling apply only to kind history")
    if "format" in settings:
        if role != EVENT_TIME:
            _fail(source, name, "format applies only to role event_time")
        bad_format = event_times.check_format(settings["format"])
        if bad_format:
            _fail(source, name, bad_format)
    if kind == HISTORY and role != QUERY:
        _fail(source, name, "kind history is a query feature (the user's earlier items); set "
                            "role: query")
    if "pooling" in settings and settings["pooling"] not in POOLINGS:
        _fail(source, name, f"pooling {settings['pooling']!r} is not one of {list(POOLINGS)}")
    if "length" in settings and (not isinstance(settings["length"], int)
                                 or not 1 <= settings["length"] <= 1000):
        _fail(source, name, f"length must be an integer from 1 to 1000, got "
                            f"{settings['length']!r}")
    for key in ("embedding_dim", "max_tokens", "min_count", "hash_bins", "prefix"):
        value = settings.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            _fail(source, name, f"{key} must be an integer >= 1, got {value!r}")
    if "oov_buckets" in settings and (not isinstance(settings["oov_buckets"], int)
                                      or settings["oov_buckets"] < 1):
        _fail(source, name, f"oov_buckets must be an integer >= 1, got "
                            f"{settings['oov_buckets']!r}")
    if "buckets" in settings and (not isinstance(settings["buckets"], int)
                                  or not 2 <= settings["buckets"] <= 100):
        _fail(source, name, f"buckets must be an integer from 2 to 100, got "
                            f"{settings['buckets']!r}")
    if "normalize" in settings and not isinstance(settings["normalize"], bool):
        _fail(source, name, f"normalize must be true or false, got {settings['normalize']!r}")
    return FeatureSpec(name=str(name), role=role, kind=kind, **settings)


def parse_features(text: str, source: str) -> tuple[list[FeatureSpec], bool]:
    """features.yaml text -> (declared features, anonymous users), checking the one-per-role
    rules.

    Raises:
      ConfigError: naming the file and the problem.
    """
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source} is not valid YAML: {e}") from e
    if not isinstance(document, Mapping) or not isinstance(document.get("features"), Mapping):
        raise ConfigError(f"{source}: expected a top-level 'features:' mapping of column name "
                          "-> {role: ..., kind: ...}")
    extra = sorted(set(document) - {"features", USERS_KEY})
    if extra:
        raise ConfigError(f"{source}: unknown top-level key(s) {extra}; only 'features' and "
                          f"'{USERS_KEY}'")
    if document.get(USERS_KEY, ANONYMOUS) != ANONYMOUS:
        raise ConfigError(f"{source}: {USERS_KEY}: {document[USERS_KEY]!r} is not "
                          f"'{ANONYMOUS}'; declare a user id column instead, or "
                          f"`{USERS_KEY}: {ANONYMOUS}` for logs without one")
    anonymous = USERS_KEY in document
    features = [parse_feature(name, values, source)
                for name, values in document["features"].items()]
    histories = [feature.name for feature in features if feature.is_history]
    if len(histories) > 1:
        raise ConfigError(f"{source}: {len(histories)} history features ({histories}); declare "
                          "at most one")
    if histories and not any(feature.role == EVENT_TIME for feature in features):
        raise ConfigError(f"{source}: feature {histories[0]!r}: a history needs the event time "
                          "(a column with role event_time) to know which events came before")
    for role in (ITEM_ID, USER_ID, EVENT_TIME):
        holders = [feature.name for feature in features if feature.role == role]
        if len(holders) > 1:
            raise ConfigError(f"{source}: {len(holders)} columns have role {role} ({holders}); "
                              "declare exactly one")
        if role == USER_ID and anonymous:
            _check_anonymous(features, holders, source)
        elif not holders and role == USER_ID:
            raise ConfigError(f"{source}: no column has role {role}; declare the column that "
                              f"identifies the user, e.g. `<column>: {{role: {role}}}`, or "
                              f"`{USERS_KEY}: {ANONYMOUS}` at the top level if the log has none")
        elif not holders and role == ITEM_ID:
            raise ConfigError(f"{source}: no column has role {role}; declare the column that "
                              f"identifies the item, e.g. `<column>: {{role: {role}}}`")
    return features, anonymous


def _check_anonymous(features: list[FeatureSpec], users: list[str], source: str) -> None:
    """The rules of `users: anonymous` (module docstring).

    Raises:
      ConfigError: naming the conflict and the fix.
    """
    if users:
        raise ConfigError(f"{source}: `{USERS_KEY}: {ANONYMOUS}` but {users[0]!r} has role "
                          f"{USER_ID}; remove one of them")
    if any(feature.is_history for feature in features):
        raise ConfigError(f"{source}: `{USERS_KEY}: {ANONYMOUS}` cannot have a history feature "
                          "(it is built from each user's earlier events); remove it")
    if not any(feature.role == QUERY for feature in features):
        raise ConfigError(f"{source}: `{USERS_KEY}: {ANONYMOUS}` needs at least one query "
                          "feature (e.g. `page: {role: query, kind: categorical}`): without a "
                          "user id it is all the query tower reads")


def schema_types(path: str) -> dict[str, str]:
    """feature name -> TFMD type name (BYTES, INT, FLOAT) of a schema .pbtxt.

    Raises:
      ConfigError: if the file is missing or not a TFMD schema.
    """
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=import-outside-toplevel
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"schema {path} not found; a contract folder (data.schema_dir) holds "
                          f"{FEATURES_FILE}, {INTERACTIONS_SCHEMA} and {ITEMS_SCHEMA} "
                          "(`twotower schema init` writes all three)")
    with tf.io.gfile.GFile(path) as f:
        try:
            schema = text_format.Parse(f.read(), schema_pb2.Schema())
        except text_format.ParseError as e:
            raise ConfigError(f"{path} is not a TFMD schema: {e}") from e
    return {feature.name: schema_pb2.FeatureType.Name(feature.type) for feature in schema.feature}


def resolve(features: list[FeatureSpec], interactions: Mapping[str, str],
            items: Mapping[str, str], source: str, anonymous_users: bool = False) -> Contract:
    """Checks the declaration against both schemas and fills in each feature's dtype.

    Query features, the ids and the event time must be columns of the interactions schema;
    candidate features and the item id columns of the items schema. Every schema column
    must be declared (role: ignored keeps one out of the model).

    Raises:
      ConfigError: naming the feature, the file and the fix.
    """
    declared = {feature.name for feature in features}
    for table, types in (("interactions", interactions), ("items", items)):
        undeclared = [name for name in types if name not in declared]
        if undeclared:
            raise ConfigError(f"{source}: columns {undeclared} of the {table} schema are not "
                              "declared; declare each (role: ignored keeps one out of the model)")
    resolved = []
    for feature in features:
        table, types = (("items", items) if feature.role == CANDIDATE
                        else ("interactions", interactions))
        if feature.role == IGNORED:
            type_name = interactions.get(feature.name) or items.get(feature.name)
            if type_name is None:
                _fail(source, feature.name, "declared but in neither schema; remove it or add "
                                            "it to a schema")
            resolved.append(feature)
            continue
        if feature.name not in types:
            _fail(source, feature.name, f"role {feature.role} needs it in the {table} schema "
                                        f"({table}.pbtxt), which has no such column; add it "
                                        "there or fix the name")
        if feature.role == ITEM_ID and feature.name not in items:
            _fail(source, feature.name, "the item id must also be a column of items.pbtxt")
        dtype = SCHEMA_DTYPES.get(types[feature.name])
        if dtype not in KIND_DTYPES[feature.kind]:
            wanted = " or ".join(name for name, value in SCHEMA_DTYPES.items()
                                 if value in KIND_DTYPES[feature.kind])
            _fail(source, feature.name, f"kind {feature.kind} needs type {wanted} in "
                                        f"{table}.pbtxt, which says {types[feature.name]}; "
                                        "change the schema type or the kind")
        resolved.append(dataclasses.replace(feature, dtype=dtype))
    return Contract(tuple(resolved), anonymous_users)


def load(schema_dir: str) -> Contract:
    """Reads and checks a contract folder (module docstring).

    Raises:
      ConfigError: naming the file, the feature and the fix.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path = os.path.join(schema_dir, FEATURES_FILE)
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"{path} not found: data.schema_dir must name a contract folder with "
                          f"{FEATURES_FILE}, {INTERACTIONS_SCHEMA} and {ITEMS_SCHEMA}; "
                          "`twotower schema init` proposes one from your files")
    with tf.io.gfile.GFile(path) as f:
        features, anonymous = parse_features(f.read(), path)
    return resolve(features, schema_types(os.path.join(schema_dir, INTERACTIONS_SCHEMA)),
                   schema_types(os.path.join(schema_dir, ITEMS_SCHEMA)), path, anonymous)
