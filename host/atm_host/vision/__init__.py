"""Vision on the host: camera sources, QR tokens, face verification and liveness on TFLite models."""
