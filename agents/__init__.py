"""Batch agents, one module per source domain. Thin: they wire topics to pipelines."""
