"""HTTP: the upload client, the multipart body, downloads, and aiohttp's errors mapped once;
and object storage (`s3.py`, `s3client.py`): buckets listed and objects fetched through
aiobotocore, which is built on aiohttp, with botocore's errors mapped once.

The only importer of aiohttp, aiobotocore and botocore outside the sandbox. May import
`pipeline.core`, `pipeline.content` and `pipeline.flow` (its retry policy).
"""
