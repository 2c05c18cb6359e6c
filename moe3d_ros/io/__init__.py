"""Files in and out: checkpoints (safetensors / weights_only, never pickle) and exported clouds and images."""
