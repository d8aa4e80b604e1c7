"""The HTTP service: pages, durable event intake, catalog and collection updates, model swaps,
metrics, and the change feed that keeps replicas in step. See docs/serving.md."""
