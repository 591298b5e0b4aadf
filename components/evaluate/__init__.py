"""The evaluate component (kfkit.components.evaluate): see README.md beside this file."""
