"""embedbench: retention of quantized embeddings on real MTEB tasks."""
