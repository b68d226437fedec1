"""Tests of the Schema Registry server (app.registry) and schema governance (app.schemas)."""
