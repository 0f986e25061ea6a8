"""Use cases. ``ingest`` (the webhook receiver's) imports only the standard library and
botocore; the others may use pydantic and Powertools."""
