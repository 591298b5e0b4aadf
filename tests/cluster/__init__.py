"""Tests against a real Kubernetes control plane (marker `cluster`; see README.md).

A package so that its conftest.py is imported as `cluster.conftest` and does not replace the
root conftest module that other tests import helpers from (`from conftest import ...`)."""
