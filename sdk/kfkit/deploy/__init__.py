"""Deployment targets. Today: Seldon Core v1 ``SeldonDeployment`` manifests."""
