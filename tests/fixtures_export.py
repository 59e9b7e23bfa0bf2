"""Session fixtures that build run folders and export bundles (owned by the export stage)."""
