"""`pvp import`: history from CSV or Parquet files into the landing (see `run`)."""
