"""Tests of the host's vision package (real models, real decoders)."""
