"""Speed benchmarks (`kronbench bench-kron`, `kronbench bench-ilkd`): comparisons timed in one process,
interleaved, after warm-up (kronbench.timing). They sit above the library they time; nothing imports them."""
