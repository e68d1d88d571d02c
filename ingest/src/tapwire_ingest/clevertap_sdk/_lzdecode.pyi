def decompress(raw: bytes, max_chars: int, /) -> str | int:
    """The text ``raw`` holds, or an int naming why it is refused (see ``lz``)."""
