"""Corpora: CoNLL column and Parquet files, the corpus registry and fetcher, a generated corpus."""
