"""The Ubiq client data plane: request signatures, data keys, FPE keys, usage events."""
