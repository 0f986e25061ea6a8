"""Domain models: the canonical event and shipment (docs/sources.md), free of I/O."""
