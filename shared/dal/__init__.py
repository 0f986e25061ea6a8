"""Data access: the only layer that talks to AWS.

It uses botocore clients directly (boto3's import pulls in s3transfer, which costs a
cold start about 40 ms and is never used here), created lazily through a cached factory
so tests and the local runtime can point them at moto. AWS errors are translated into
``shared.errors`` here and nowhere else.
"""
