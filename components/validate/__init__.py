"""The validate component (kfkit.components.validate): see README.md beside this file."""
