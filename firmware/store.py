"""Small power-safe files on the flash: written to a temporary name, then renamed over the old one."""

import os


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)  # littlefs renames atomically: the old file or the new, never half
