"""Channel, parameter, split and artifact-file names shared by components and the pipeline."""

# Channels.
SCHEMA_KEY = "schema"
EXAMPLES_KEY = "examples"
STATISTICS_KEY = "statistics"
ANOMALIES_KEY = "anomalies"
REPORT_KEY = "report"

# ExampleGen parameters.
INPUT_FORMAT_KEY = "input_format"
SPLIT_METHOD_KEY = "split_method"
TIME_FEATURE_KEY = "time_feature"
CUTOFF_QUANTILE_KEY = "cutoff_quantile"
CUTOFF_TIMESTAMP_KEY = "cutoff_timestamp"
EVAL_PERCENT_KEY = "eval_percent"

# ValidationGate parameters.
DATASET_NAME_KEY = "dataset_name"

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
