"""Lambda entry points: thin edges that build adapters from the environment, call the same stage
functions as `pipeline.runner`, and pass S3 references (never payloads) between states."""
