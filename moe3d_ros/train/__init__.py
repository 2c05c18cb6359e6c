"""Fine-tuning: losses, configuration, trainer (single process or torchrun DDP)."""
