"""Session fixtures that train tiny models (owned by the train stage)."""
