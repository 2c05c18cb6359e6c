"""Evaluation: the field's depth, boundary and reconstruction metrics and the protocols that run them."""
