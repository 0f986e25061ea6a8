"""Domain models: the canonical event and shipment (DESIGN §2), free of I/O."""
