"""The small core every stage uses: config, errors, atomic writes, device, registry."""
