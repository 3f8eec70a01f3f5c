"""Channel, parameter, split and artifact-file names shared by components and the pipeline."""

# Channels.
SCHEMA_KEY = "schema"
EXAMPLES_KEY = "examples"
STATISTICS_KEY = "statistics"
ANOMALIES_KEY = "anomalies"
REPORT_KEY = "report"
MODEL_KEY = "model"

# ExampleGen parameters.
INPUT_FORMAT_KEY = "input_format"
SPLIT_METHOD_KEY = "split_method"
TIME_FEATURE_KEY = "time_feature"
TIME_FORMAT_KEY = "time_format"
CUTOFF_QUANTILE_KEY = "cutoff_quantile"
CUTOFF_TIMESTAMP_KEY = "cutoff_timestamp"
EVAL_PERCENT_KEY = "eval_percent"
HISTORY_FEATURE_KEY = "history_feature"
HISTORY_LENGTH_KEY = "history_length"
USER_FEATURE_KEY = "user_feature"
ITEM_FEATURE_KEY = "item_feature"
SPAN_KEY = "span_request"  # which span to ingest: "latest", a span number or YYYY-MM-DD
SPAN_PATTERN_KEY = "span_pattern"  # the input pattern before span resolution
SPAN_WAIT_MINUTES_KEY = "span_wait_minutes"
SPAN_PROPERTY = "span"  # TFX's span property of Examples / statistics; a report's custom one
SPAN_SOURCE_PROPERTY = "span_source"  # the unresolved input path a span came from

# ValidationGate parameters.
DATASET_NAME_KEY = "dataset_name"
BASELINE_STATISTICS_KEY = "baseline_statistics"
DRIFT_THRESHOLDS_KEY = "drift_thresholds"
CURRENT_KEY = "current"
WINDOW_KEY = "window"

# Split names.
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
CATALOG_SPLIT = "catalog"

# Split methods.
SPLIT_TIME = "time"
SPLIT_HASH = "hash"
SPLIT_NONE = "none"

# Files inside artifacts.
VALIDATION_REPORT_FILE = "report.json"

# NegativePoolBuilder channels and parameters.
INTERACTIONS_KEY = "interactions"
ITEMS_KEY = "items"
INTERACTIONS_REPORT_KEY = "interactions_report"
ITEMS_REPORT_KEY = "items_report"
NEGATIVE_POOL_KEY = "negative_pool"
CONTRACT_KEY = "contract"
SEPARATE_PROCESS_KEY = "separate_process"

# Files inside a NegativePool artifact.
POOL_STATS_FILE = "stats.json"
POOL_FREQUENCIES_DIR = "item_frequencies"
POOL_POOL_DIR = "pool"
POOL_VOCAB_DIR = "vocab"
POOL_NUMERIC_FILE = "numeric.json"
CONTRACT_FILE = "contract.json"
POOL_RECORD_SUFFIX = ".tfrecord.gz"

# Features of the frequency table and extra features of pool rows.
POOL_ITEM_ID = "item_id"
POOL_COUNT = "train_count"
POOL_IN_CATALOG = "in_catalog"
POOL_PROBABILITY = "probability"
POOL_POOL_PROBABILITY = "pool_probability"

# Trainer channels and the run_fn's custom_config entries.
NEGATIVE_POOL_URI = "negative_pool_uri"
CATALOG_PATTERN = "catalog_pattern"
CONFIG = "config"

# IndexBuilder channels, parameters and files.
SCANN_MODEL_KEY = "scann_model"
STOCK_MODEL_KEY = "stock_model"
INDEX_K_KEY = "k"
MAX_K_KEY = "max_k"
BRUTE_FORCE_BELOW_KEY = "brute_force_below"
NUM_LEAVES_KEY = "num_leaves"
NUM_LEAVES_TO_SEARCH_KEY = "num_leaves_to_search"
ANISOTROPIC_THRESHOLD_KEY = "anisotropic_quantization_threshold"
REORDER_KEY = "reorder"
HISTORY_POLICY_KEY = "history_policy"
REPEAT_WEIGHT_KEY = "repeat_weight"
REPEAT_HALF_LIFE_KEY = "repeat_half_life"
SERVING_MODEL_NAME_KEY = "serving_model_name"
REPORT_QUERIES_KEY = "report_queries"
TARGET_RECALL_KEY = "target_recall"
INDEX_REPORT_FILE = "index_report.json"

# ModelValidator channels, parameters and files.
BASELINE_MODEL_KEY = "baseline_model"
INDEX_MODEL_KEY = "index_model"
BLESSING_KEY = "blessing"
VALIDATION_K_KEY = "k"
PROTOCOL_KEY = "protocol"
MIN_RECALL_KEY = "min_recall"
MAX_RELATIVE_REGRESSION_KEY = "max_relative_regression"
MIN_SCANN_RECALL_KEY = "min_scann_recall"
MIN_LIFT_OVER_MOSTPOP_KEY = "min_lift_over_mostpop"
MAX_EVAL_INTERACTIONS_KEY = "max_eval_interactions"
VALIDATION_METRICS_FILE = "metrics.json"
VALIDATION_PLOT_FILE = "validation.png"
# ModelBlessing custom properties that TFX's Pusher and LatestBlessedModelStrategy read.
BLESSED_PROPERTY = "blessed"
CURRENT_MODEL_PROPERTY = "current_model"
CURRENT_MODEL_ID_PROPERTY = "current_model_id"
BASELINE_MODEL_PROPERTY = "baseline_model"
BASELINE_MODEL_ID_PROPERTY = "baseline_model_id"

# The served retrieval model (components/index_builder/retrieval_model.py) and the model
# server that counts what it reports (serving/model_manager.py).
HISTORY_UNKNOWN_OUTPUT = "history_unknown_ids"  # [B] int32: request history ids not known
