"""Sweep files: safe YAML and --set, the pydantic schema, distributions. The one place that knows
YAML."""
