"""embedbench: retention of quantized embeddings on real MTEB tasks."""


def load_run(path):
    """A run folder's retention table as a pandas DataFrame (`embedbench.results.load_run`)."""
    from embedbench.results import load_run as load

    return load(path)
