"""Local storage of the engine: content-addressed blobs, metadata, snapshots and layer unpack."""
