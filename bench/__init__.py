"""vlmlab's benchmarks: ratios against peers measured side by side in one run (make bench)."""
