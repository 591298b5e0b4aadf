"""The push component (kfkit.components.push): see README.md beside this file."""
