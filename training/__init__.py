"""Training pipeline for the shipped building model (not part of the plugin zip)."""
