"""The sweep engine: storages and studies, search space to trials, the objective and its exact
budget, retries, workers and the parent/worker contract. Light to import: no torch."""
