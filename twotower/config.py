"""One typed config holding every default of the twotower pipeline.

Every stage reads its settings from one section of `PipelineConfig`. A YAML file
(`twotower run --config FILE`) overrides any subset of fields; `--set a.b=v` overrides
single fields on the command line. Every field is checked on load and a bad field
raises `ConfigError` naming the field, the value and what is allowed.

Defaults are chosen by measurement on validation splits (each docstring says which).
YAML parsing and type checking of fields live in config_parsing.py, every numeric field's
range in config_bounds.py.

Relative paths are resolved against the current working directory.
"""
from __future__ import annotations

import dataclasses
import datetime
import pathlib
import re
import typing
from typing import Any, Literal, Mapping, Optional, Union

import yaml

from twotower import config_bounds, config_parsing
from twotower.errors import ConfigError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEMAS_ROOT = REPO_ROOT / "schemas"
DEFAULT_SCHEMA_DIR = str(SCHEMAS_ROOT / "movielens")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the raw data is and how it is split.

    Attributes:
      interactions: File pattern of the interaction log (one row per positive event).
      items: File pattern of the item catalogue (one row per item).
      input_format: Format of both inputs.
      split: `time` (train before a cutoff, eval from it on) or `hash` (random by row).
      cutoff_quantile: For `split: time`, the quantile of event times used as the cutoff.
      cutoff_timestamp: For `split: time`, an explicit cutoff; overrides the quantile.
      eval_percent: For `split: hash`, the share of rows sent to eval, in percent.
      schema_dir: The data contract folder (twotower/contract.py): `features.yaml` (each
        column's role and kind; the event time of the time split is its `event_time`
        column) and the TFMD schemas `interactions.pbtxt`, `items.pbtxt`.
    """

    interactions: str = "data/movielens/interactions.csv"
    items: str = "data/movielens/items.csv"
    input_format: Literal["csv", "parquet", "tfrecord"] = "csv"
    split: Literal["time", "hash"] = "time"
    cutoff_quantile: float = 0.8
    cutoff_timestamp: Optional[int] = None
    eval_percent: int = 20
    schema_dir: str = DEFAULT_SCHEMA_DIR

    def validate(self) -> None:
        _check(0.0 < self.cutoff_quantile < 1.0, "data.cutoff_quantile",
               self.cutoff_quantile, "a number strictly between 0 and 1")


@dataclasses.dataclass(frozen=True)
class SpansConfig:
    """Data that arrives in spans (docs/operations.md): what a scheduled run ingests and trains on.

    Only used when data.interactions has a TFX span placeholder, `{SPAN}` or
    `{YYYY}`/`{MM}`/`{DD}` (e.g. `data/incoming/{YYYY}-{MM}-{DD}/interactions.csv`).

    Attributes:
      span: The span a run ingests: `latest`, a span number, or a date YYYY-MM-DD for date
        patterns. Airflow runs of date patterns ingest their logical date's span; Kubeflow
        takes it as the runtime parameter `span`.
      window_spans: The NegativePoolBuilder and the Trainer read the newest this many
        validated spans up to the ingested one (earlier spans' Examples come from ML
        Metadata, not ingested again); eval is the ingested span's eval split.
      wait_minutes: How long a run waits for its span's files before failing (0: fail now).
      drift_thresholds: Feature -> largest allowed distance between the ingested span's
        train statistics and the previous validated span's (TFDV: L-infinity for
        categorical features, Jensen-Shannon divergence for numeric ones). `{}` switches
        the drift gate off, e.g. `--set spans.drift_thresholds={}` to accept one run.
    """

    span: Union[int, str] = "latest"
    window_spans: int = 4
    wait_minutes: int = 0
    drift_thresholds: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "span", str(self.span))

    def validate(self) -> None:
        _check(self.span == "latest" or bool(re.fullmatch(r"\d+|\d{4}-\d{2}-\d{2}|\{\{ ds \}\}",
                                                           self.span)),
               "spans.span", self.span, "latest, a span number or a date YYYY-MM-DD")
        for feature, threshold in self.drift_thresholds.items():
            _check(0.0 < threshold <= 1.0, f"spans.drift_thresholds.{feature}", threshold,
                   "a distance in (0, 1]")


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    """Item frequencies, vocabularies and the mixed-negative pool (docs/architecture.md).

    Attributes:
      sampler: Pool sampling distribution: `uniform`, `popularity` ((count + smoothing)^alpha)
        or `unseen_boost` (never-seen items weigh unseen_weight, seen items 1).
      alpha: Popularity exponent; only with sampler `popularity` (0 is uniform).
      unseen_weight: Weight of never-seen items with sampler `unseen_boost`.
      pool_size: Items in the pool; null means the whole catalogue, capped at max_pool_size.
      max_pool_size: Cap on the pool size.
      smoothing: Add-k smoothing of in-batch probabilities, so never-seen items get q > 0.
      min_count: Ids seen fewer times in training map to the OOV bucket.
      seed: Seed of the per-key hash choosing pool members when the catalogue is capped.
      max_unknown_item_share: The run fails when more of the train interactions than this
        name an item missing from the catalogue (such items can never be retrieved).
    """

    sampler: Literal["uniform", "popularity", "unseen_boost"] = "uniform"
    alpha: float = 0.0
    unseen_weight: float = 5.0
    pool_size: Optional[int] = None
    max_pool_size: int = 1_000_000
    smoothing: float = 1.0
    min_count: int = 1
    seed: int = 42
    max_unknown_item_share: float = 0.05

    def validate(self) -> None:
        _check(self.sampler in POOL_SAMPLERS, "pool.sampler", self.sampler,
               f"one of {', '.join(POOL_SAMPLERS)}")
        _check(self.alpha == 0.0 or self.sampler == "popularity", "pool.alpha", self.alpha,
               "0 unless pool.sampler is popularity")
        _check(self.pool_size is None or self.pool_size <= self.max_pool_size,
               "pool.pool_size", self.pool_size, f"at most pool.max_pool_size "
               f"({self.max_pool_size})")

    @property
    def capacity(self) -> int:
        """The most items the pool holds: pool_size, or max_pool_size when that is null."""
        return self.pool_size if self.pool_size is not None else self.max_pool_size


POOL_SAMPLERS: tuple[str, ...] = typing.get_args(
    typing.get_type_hints(PoolConfig)["sampler"])

# model.id_dropout when left null and the contract declares a history feature.
HISTORY_ID_DROPOUT = 0.3


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Tower shapes and the output normalisation (docs/architecture.md).

    Attributes:
      embedding_dim: Output dimension of both towers.
      hidden_layers: Widths of the ReLU layers before the output projection.
      use_features: Embed user/item features besides the ids (off: ids only).
      id_embedding_dim: Width of the id embeddings (ignored for an id-only tower without
        hidden layers, whose output is the id embedding itself).
      feature_embedding_dim: Width of each feature embedding.
      l2_normalize: Unit-norm outputs, so dot product = cosine similarity.
      temperature: Scores are divided by it (logits of unit vectors live in [-1, 1]). 0.2
        was the best of 0.05, 0.07, 0.1 and 0.2 on the temporal validation split and within
        noise of the others on the tfrs and recbole ones (reports/quality_validation.json).
      learnable_temperature: Train log(temperature), clipped to [0.01, 1].
      popularity_prior: Weight β of log p_freq added to retrieval scores (0: none); see
        components/trainer/prior.py. 0.5, chosen on the validation splits with τ 0.2
        (reports/quality_validation_beta.json): the temporal split is flat for β in
        0.5-2 (recall@100 0.2844-0.2864), and the tfrs and recbole splits are best at 0.5.
      id_dropout: While training, replace each row's user id and item id by the unknown
        id with this probability (the tower learns to serve unknown users and never-seen
        items from their features and history instead of an untrained OOV row). null:
        HISTORY_ID_DROPOUT when the contract declares a history feature, else 0 (chosen
        on the validation splits, reports/quality_history_validation*.json: with a history
        it lifts the history protocol, without one it costs the temporal and recbole
        protocols, whose queries have nothing else to lean on).
    """

    embedding_dim: int = 64
    hidden_layers: tuple[int, ...] = (128,)
    use_features: bool = True
    id_embedding_dim: int = 64
    feature_embedding_dim: int = 16
    l2_normalize: bool = True
    temperature: float = 0.2
    learnable_temperature: bool = False
    popularity_prior: float = 0.5
    id_dropout: Optional[float] = None

    def validate(self) -> None:
        """Ranges only (config_bounds.py)."""


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss and negatives (docs/architecture.md).

    Attributes:
      loss: softmax (sampled softmax), bce, bpr or hinge.
      pool_ratio: r: M = round(r * batch_size) pool negatives per batch (0: in-batch only).
      logq_correction: Subtract log q_j (the mixture's expected count) from each logit.
      remove_accidental_hits: Mask other columns holding a row's positive item.
      num_hard_negatives: Keep only the h highest-scoring negatives per row (null: all).
      margin: Hinge margin.
      reduction: `mean` over a batch's query rows, or `sum` (tfrs.tasks.Retrieval's; B times
        larger, which matters to Adagrad, not to Adam).
    """

    loss: Literal["softmax", "bce", "bpr", "hinge"] = "softmax"
    pool_ratio: float = 0.25
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    num_hard_negatives: Optional[int] = None
    margin: float = 0.5
    reduction: Literal["mean", "sum"] = "mean"

    def validate(self) -> None:
        """Ranges only (config_bounds.py)."""


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings of the Trainer.

    Attributes:
      batch_size: Rows per batch (B, the in-batch negatives).
      epochs: Passes over the train split (ignored when train_steps is set).
      train_steps: A fixed number of steps instead of epochs.
      optimizer: lazy_adam (Adam whose embedding-table updates touch only the rows a batch
        uses: components/trainer/optimizers.py; at 1M ids 8.9x faster steps than adam, same
        quality on MovieLens: reports/quality_validation_optimizer.json), adam or adagrad.
      learning_rate: The optimizer's learning rate.
      seed: Seeds initialisation, shuffling and pool draws.
      warm_start: Initialise the towers from the pipeline's latest blessed model (ids
        known to it keep their rows; new ids start fresh); the model section must be
        unchanged. null: on when the data arrives in spans (spans section), off otherwise.
      incremental_epochs: Epochs of a warm-started run (null: training.epochs).
    """

    batch_size: int = 1024
    epochs: int = 10
    train_steps: Optional[int] = None
    optimizer: Literal["adagrad", "adam", "lazy_adam"] = "lazy_adam"
    learning_rate: float = 0.01
    seed: int = 42
    warm_start: Optional[bool] = None
    incremental_epochs: Optional[int] = None

    def validate(self) -> None:
        """Ranges only (config_bounds.py)."""


# Evaluation's default sample size (validation.max_eval_interactions; eval_sample.py).
DEFAULT_EVAL_INTERACTIONS = 20_000


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    """Model-validator gating thresholds.

    Attributes:
      k: Cut-off of the gated recall; at most 10% of the catalogue is used (a wider cut-off
        is passed by almost any model; components/model_validator/gating.py).
      protocol: `filtered` (the user's training items removed) or `tfrs` (not removed).
      min_recall: Absolute floor on <protocol>_recall_at_<k>.
      max_relative_regression: Largest allowed drop against the latest blessed model on
        the same eval split (0.05: at most 5% lower).
      min_scann_recall: Smallest ScaNN recall@k against exact search on eval queries.
      min_lift_over_mostpop: The gated recall must be above MostPop's (the most frequent
        training items for everyone, on the same split) times 1 + this, on every run,
        the first included; -1 switches the check off.
      max_eval_interactions: Score about this many eval interactions, a seeded sample
        (components/trainer/eval_sample.py; null: all). Exact search over the whole
        catalogue costs eval interactions x catalogue size; this bounds it on large data,
        and every recall/NDCG carries its 95% interval (`_ci95`). The Trainer's metrics and
        the validator (candidate, baseline and MostPop alike) score the same sampled rows.
    """

    k: int = 100
    protocol: Literal["filtered", "tfrs"] = "filtered"
    min_recall: float = 0.0
    max_relative_regression: float = 0.05
    min_lift_over_mostpop: float = 0.0
    min_scann_recall: float = 0.95
    max_eval_interactions: Optional[int] = DEFAULT_EVAL_INTERACTIONS

    def validate(self) -> None:
        _check(self.protocol in ("filtered", "tfrs"), "validation.protocol", self.protocol,
               "one of ['filtered', 'tfrs']")


HISTORY_POLICIES = ("rank", "exclude")  # components/index_builder/repeat.py


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """The served retrieval: ScaNN index settings (null fields are derived from the
    catalogue size) and what the request's history does (components/index_builder/repeat.py).

    Attributes:
      history_policy: `rank`: the history's items compete with the index's, scored by the
        model plus the repeat term (buy again); `exclude`: they are never returned (watch
        something new). Used when the contract declares a history feature.
      repeat_weight: w of the repeat term w · log(1 + decayed count), in retrieval-score
        units (cosine + the prior's term); 0: the model's score alone.
      repeat_half_life: A past item's weight halves every this many history steps; null:
        every occurrence counts 1.
    """

    k: int = 100
    max_k: int = 1000
    brute_force_below: int = 20_000
    num_leaves: Optional[int] = None
    num_leaves_to_search: Optional[int] = None
    anisotropic_quantization_threshold: float = 0.2
    reorder: Optional[int] = None
    history_policy: str = "rank"
    repeat_weight: float = 0.0
    repeat_half_life: Optional[float] = None

    def validate(self) -> None:
        _check(None in (self.num_leaves, self.num_leaves_to_search)
               or self.num_leaves_to_search <= self.num_leaves, "index.num_leaves_to_search",
               self.num_leaves_to_search, f"at most index.num_leaves ({self.num_leaves})")
        _check(1 <= self.k <= self.max_k, "index.k", self.k,
               f"an integer from 1 to index.max_k ({self.max_k})")
        _check(self.history_policy in HISTORY_POLICIES, "index.history_policy",
               self.history_policy, f"one of {list(HISTORY_POLICIES)}")


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """Where models are pushed and how the model server listens: the defaults of
    `twotower serve` and `twotower query` (serving/flags.py; a flag wins over the config).

    Attributes:
      base_path: Folder the Pushers write `<model_name>/<version>/` under.
      model_name: The served model's name (the ScaNN variant; the stock one adds `-stock`).
      host: Address the server binds and the client asks.
      grpc_port: TF Serving's gRPC API port.
      rest_port: TF Serving's REST API port.
      poll_seconds: Seconds between the server's looks for new versions.
      max_batch_size: Rows a request may carry.
    """

    base_path: str = "serving_models"
    model_name: str = "twotower"
    host: str = "127.0.0.1"
    grpc_port: int = 8500
    rest_port: int = 8501
    poll_seconds: float = 2.0
    max_batch_size: int = 1024

    def validate(self) -> None:
        """Ranges only (config_bounds.py)."""


SCHEDULE_PRESETS = frozenset({"none", "@once", "@hourly", "@daily", "@weekly", "@monthly",
                              "@yearly"})


@dataclasses.dataclass(frozen=True)
class OrchestrationConfig:
    """Pipeline identity, storage and scheduling.

    Attributes:
      pipeline_name: Name in ML Metadata and in the orchestrators.
      pipeline_root: Where artifacts go (local path or `gs://...`).
      metadata_path: SQLite ML Metadata file for local runs; empty means
        `<pipeline_root>/metadata.sqlite`.
      enable_cache: Re-use outputs of components whose inputs did not change.
      beam_pipeline_args: Passed to every Beam-based component.
      component_beam_pipeline_args: Component id -> Beam arguments added after
        beam_pipeline_args for that component only (the later flag wins), e.g. one process
        for the NegativePoolBuilder while ingestion runs multi-process: at 10M interactions
        and 1M items its Beam pipeline holds ~7 GB in 2 DirectRunner worker processes and
        ~4 GB in one (docs/operations.md).
      schedule: Cron string for Airflow / recurring runs (or an Airflow preset such as
        `@daily`; `none` for manual runs only).
      start_date: ISO date of the first scheduled run.
      retries: Task retries in Airflow.
      task_timeout_minutes: Airflow's execution_timeout of each task (0: none); a task
        past it fails, and its child process goes with it (docs/operations.md).
      image: Container image for Kubeflow Pipelines.
      trainer_workers: Training processes of the Trainer in a compiled Kubeflow spec: above
        1 it runs as a Vertex AI custom job of one chief and trainer_workers - 1 workers on
        `image` under MultiWorkerMirroredStrategy (components/trainer/vertex.py). Local
        and Airflow runs train in one process and refuse more (docs/operations.md says
        how to start workers by hand).
      vertex_project: The Google Cloud project of that custom job (required above 1).
      vertex_region: Its Vertex AI region.
      trainer_machine_type: The machine type of each of its replicas.
      separate_processes: Run the memory-heavy work (the NegativePoolBuilder's Beam
        pipeline, the Trainer's training) in child Python processes. Local and Airflow runs
        execute every component in one process, and neither the DirectRunner's buffers nor
        TensorFlow's allocations are given back before the process exits (GBs at a million
        ids); a child returns them when it ends. Costs one import of the stack (~10 s) each.
    """

    pipeline_name: str = "twotower"
    pipeline_root: str = "runs/pipeline_root"
    metadata_path: str = ""
    enable_cache: bool = True
    beam_pipeline_args: tuple[str, ...] = ("--direct_running_mode=in_memory",
                                           "--direct_num_workers=1")
    component_beam_pipeline_args: dict[str, tuple[str, ...]] = dataclasses.field(
        default_factory=dict)
    schedule: str = "0 3 * * *"
    start_date: str = "2026-01-01"
    retries: int = 1
    task_timeout_minutes: float = 0.0
    image: str = "twotower:latest"
    trainer_workers: int = 1
    vertex_project: str = ""
    vertex_region: str = "us-central1"
    trainer_machine_type: str = "n1-standard-8"
    separate_processes: bool = True

    def validate(self) -> None:
        _check(bool(re.fullmatch(r"[A-Za-z0-9_.-]+", self.pipeline_name)),
               "orchestration.pipeline_name", self.pipeline_name,
               "letters, digits, '_', '.' and '-' only (Airflow DAG ids and Kubeflow names)")
        _check(self.schedule in SCHEDULE_PRESETS or len(self.schedule.split()) == 5,
               "orchestration.schedule", self.schedule,
               f"a 5-field cron string such as '0 3 * * *' or one of {sorted(SCHEDULE_PRESETS)}")
        try:
            datetime.date.fromisoformat(self.start_date)
        except ValueError:
            _check(False, "orchestration.start_date", self.start_date, "an ISO date YYYY-MM-DD")
        _check(self.trainer_workers == 1 or bool(self.vertex_project),
               "orchestration.vertex_project", self.vertex_project,
               f"a Google Cloud project: orchestration.trainer_workers is "
               f"{self.trainer_workers}, which runs the Trainer as a Vertex AI custom job")

    @property
    def resolved_metadata_path(self) -> str:
        return self.metadata_path or f"{self.pipeline_root.rstrip('/')}/metadata.sqlite"


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline's settings, one section per stage."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    spans: SpansConfig = dataclasses.field(default_factory=SpansConfig)
    pool: PoolConfig = dataclasses.field(default_factory=PoolConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    index: IndexConfig = dataclasses.field(default_factory=IndexConfig)
    serving: ServingConfig = dataclasses.field(default_factory=ServingConfig)
    orchestration: OrchestrationConfig = dataclasses.field(default_factory=OrchestrationConfig)

    def validate(self) -> None:
        config_bounds.check(self)
        for field in dataclasses.fields(self):
            getattr(self, field.name).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_section(name: str, section: Any) -> None:
    """Checks one section alone (ranges, then its own rules), as a component built from it
    does: `check_section("pool", PoolConfig(alpha=-1))` raises like a loaded config would.

    Raises:
      ConfigError: naming the field, e.g. `pool.alpha: got -1; expected a number from 0 to 2`.
    """
    config_bounds.check_section(name, section)
    section.validate()


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: got {value!r}; expected {allowed}")


def from_dict(values: Mapping[str, Any]) -> PipelineConfig:
    """Builds and validates a config from nested mappings (e.g. parsed YAML).

    Raises:
      ConfigError: naming the first unknown, mistyped or out-of-range field.
    """
    data = (values or {}).get("data")
    if isinstance(data, Mapping) and "time_feature" in data:
        raise ConfigError("data.time_feature is gone: the event time is the column with role "
                          "event_time in <data.schema_dir>/features.yaml")
    config = config_parsing.build(PipelineConfig, values or {}, "")
    config.validate()
    return config


def load(path: Optional[str] = None, overrides: tuple[str, ...] = ()) -> PipelineConfig:
    """Loads a YAML config file (or the defaults) and applies `section.field=value` overrides.

    Raises:
      ConfigError: if the file is missing or not YAML, or a field is invalid.
    """
    return from_dict(load_values(path, overrides))


def load_values(path: Optional[str] = None, overrides: tuple[str, ...] = ()
                ) -> dict[str, Any]:
    """The sections `load` builds a config from: the file's mapping with the overrides
    applied, fields left out still left out (a config written from it keeps only those)."""
    values: dict[str, Any] = {}
    if path:
        file = pathlib.Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {path} not found; pass an existing YAML file "
                              "to --config (see configs/ for examples)")
        try:
            values = config_parsing.load_yaml(file.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path}: expected a mapping of sections at top level")
    for text in overrides:
        (section, field), value = config_parsing.parse_override(text)
        section_values = values.setdefault(section, {})
        if not isinstance(section_values, dict):
            raise ConfigError(f"{section}: expected a mapping of fields")
        section_values[field] = value
    return values


def to_yaml(config: PipelineConfig) -> str:
    """Renders a config as YAML that `load` reads back to the same config."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, tuple):
            return [plain(item) for item in value]
        return value
    return yaml.safe_dump(plain(config.to_dict()), sort_keys=False)
