"""The customer journey on the host: an explicit state machine from the phone's QR to the signed report."""
