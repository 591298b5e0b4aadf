"""The resolve_baseline component (kfkit.components.resolve_baseline): see README.md beside this file."""
