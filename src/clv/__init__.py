"""CLV and churn: features, models, scores, segments and budget allocation.

Heavy libraries (pyspark, xgboost, mlflow, great_expectations) are imported inside
the functions that need them, so importing this package (and the DAG files that
use it) stays cheap.
"""

__version__ = "0.1.0"
