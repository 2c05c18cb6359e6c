"""Predictions to boundary-clean metric geometry: filtering, post-processing (host and device), metric scale."""
