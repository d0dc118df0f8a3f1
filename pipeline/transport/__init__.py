"""HTTP: the upload client, the multipart body, downloads, and aiohttp's errors mapped once.

The only importer of aiohttp outside the sandbox. May import `pipeline.core` and
`pipeline.content`.
"""
