"""Benchmarks shipped with the package (`longbow bench`): longbow's own prefill/decode speed
(generate), the decode roofline (roofline) and the comparison with llama.cpp and transformers
on the same GGUF (peers). The scripts in the repository's bench/ folder are thin wrappers."""
