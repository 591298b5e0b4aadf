"""The ingest component (kfkit.components.ingest): see README.md beside this file."""
