"""Every on-disk format: TFRecord feature spec, Parquet schemas, manifest fields."""
