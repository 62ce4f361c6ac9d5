"""conrdata: rigged characters to CoNR training data (UDP + RGBA), matting, shards and manifests."""

__version__ = "0.1.0"
