"""partialdyn benchmarks against eager and torch.compile; see run.py and README.md."""
