"""lmforge: crawl shards to a served, monitored model, with lineage."""
