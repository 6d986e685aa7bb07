"""Training: the trainer, one step, distributed training, the start-up check, sweeps."""
