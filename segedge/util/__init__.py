"""Utilities that know nothing of models: errors, output folders, atomic files, progress, plots."""
