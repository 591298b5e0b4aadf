"""The resolve_source component (kfkit.components.resolve_source): see README.md beside this file."""
