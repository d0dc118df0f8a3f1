"""Readers of the two containers the service takes, WAV and MP3.

Each tells the codec and the length from the bytes really present: a header's count is used only
where the bytes agree with it; otherwise the audio is counted (WAV data up to the end of the file,
MP3 frames walked header to header). `pipeline.content.probe` is the entry point that picks one and
applies the service's limits.
"""
