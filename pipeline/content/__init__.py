"""What a source's bytes are: the body as hashed, the hash, the probe (WAV chunks, MP3 frames)
and the located bytes handed to the upload step.

May import `pipeline.core` only.
"""
