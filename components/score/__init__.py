"""The score component (kfkit.components.score): see README.md beside this file."""
