"""Fetch: SpaceNet data and models from S3 to local files (catalog, bucket access, tile index, model store)."""
