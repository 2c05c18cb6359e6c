"""A window of images to predictions on a device: preprocessing, the engine, the encoder cache, CUDA graphs."""
