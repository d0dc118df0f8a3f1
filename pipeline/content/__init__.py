"""What a source's bytes are: the body as hashed, the hash, the probe (WAV chunks, MP3 frames),
the decoder that turns any other format into a WAV (`decode`, `wavfile`) and the located bytes
handed to the upload step.

May import `pipeline.core` only.
"""
