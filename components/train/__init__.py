"""The train component (kfkit.components.train): see README.md beside this file."""
